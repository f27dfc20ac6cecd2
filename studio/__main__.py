"""``python -m studio``: start World Studio."""

import sys

from studio.app import main

sys.exit(main())
