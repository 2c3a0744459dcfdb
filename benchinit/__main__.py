"""``python -m benchinit``: the same as the ``benchinit`` command."""

import sys

from benchinit.cli import main

if __name__ == "__main__":  # guarded: spawned worker processes import this module again
    sys.exit(main())
