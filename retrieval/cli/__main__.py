"""`python -m retrieval.cli`: the `byline` command."""

import sys

from retrieval.cli.main import main

sys.exit(main())
