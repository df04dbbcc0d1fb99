"""``python -m ccd`` is the ``ccd`` command."""

import sys

from ccd.cli import main

sys.exit(main())
