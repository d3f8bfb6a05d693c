"""``python -m affectgpt.cli``."""

import sys

from affectgpt.cli import main

sys.exit(main())
