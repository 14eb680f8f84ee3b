"""HPC Pack's job scheduler for Linux: an embedded head node and the backend of the HPC module."""

__version__ = "0.1.0"
