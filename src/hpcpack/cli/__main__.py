"""`python -m hpcpack.cli`: the `job` command."""

import sys

from . import main

sys.exit(main())
