"""``python -m sam2_fast ...``: the ``sam2-fast`` command line (see :mod:`sam2_fast.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
