"""Where a benchmark script leaves its figures: one JSON file, and a line on stderr saying where."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def write(path: Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
    print(f"wrote {path}", file=sys.stderr)
    return path
