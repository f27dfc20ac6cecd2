"""``python -m worldstudio.studio``: start World Studio."""

import sys

from worldstudio.studio.app import main

sys.exit(main())
