"""``python -m benchinit``: the same as the ``benchinit`` command."""

import sys

from benchinit.cli import main

sys.exit(main())
