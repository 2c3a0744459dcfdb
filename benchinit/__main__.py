"""``python -m benchinit``: the same as the ``benchinit`` command."""

import sys

from benchinit.cli import command

if __name__ == "__main__":  # guarded: spawned worker processes import this module again
    sys.exit(command())
