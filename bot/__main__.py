"""`python -m bot`: the same as `byline-bot`."""

import sys

from bot.cli import main

sys.exit(main())
