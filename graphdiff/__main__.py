"""``python -m graphdiff``: the same command line as ``graphdiff``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
