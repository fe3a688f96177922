"""`python -m bot`: the same as `byline-bot`."""

import sys

from bot.cli import main

if __name__ == "__main__":  # not in a worker process (BYLINE_WORKER=process spawns them)
    sys.exit(main())
