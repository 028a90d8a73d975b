"""``python -m search.space``: check a space file, or print the space reference."""

import sys

from search.space.cli import main

sys.exit(main())
