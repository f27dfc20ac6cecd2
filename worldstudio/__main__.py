"""``python -m worldstudio``: the ``worldstudio`` command."""

import sys

from worldstudio.core.cli import main

sys.exit(main())
