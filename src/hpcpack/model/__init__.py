"""The shared model, the same on every side: job and task states and their one transition table
(`states`), jobs and tasks (`objects`), HPC Pack's parameter formats (`params`, `jobspec`) and job files
(`jobxml`). Nothing here does I/O beyond reading and writing job files."""
