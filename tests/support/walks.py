"""The modules a `byline` command passes through: `python -m tests.support.walks ARGS...`
runs the CLI with a profiler and prints, on its last stderr line, the product modules whose
functions it called, in the order first entered (calls made while a module is imported, and
class bodies, don't count: they are set-up, not the walk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CO_OPTIMIZED = 0x1  # a function's code (a module's or class body's lacks it)


def walk(args: list[str], env: dict[str, str]) -> list[str]:
    """The modules `byline ARGS` passes through, run in a fresh process with `env`."""
    done = subprocess.run([sys.executable, "-m", "tests.support.walks", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stderr.strip().splitlines()[-1])


def _trace(args: list[str]) -> int:
    seen: dict[str, None] = {}
    product = (str(ROOT / "retrieval") + os.sep, str(ROOT / "bot") + os.sep)

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        code, back = frame.f_code, frame.f_back
        if event != "call" or not code.co_flags & CO_OPTIMIZED:
            return
        if back is not None and not back.f_code.co_flags & CO_OPTIMIZED:
            return  # called by a module or class body being run: an import
        if code.co_filename.startswith(product):
            seen.setdefault(str(Path(code.co_filename).relative_to(ROOT)), None)

    from retrieval.cli.main import main

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        status = main(args)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    print(json.dumps(list(seen)), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(_trace(sys.argv[1:]))
