"""Where things are: the repository, the seed coverage, the installed `byline` command."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
BYLINE = Path(sys.executable).parent / "byline"
