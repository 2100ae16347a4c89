"""Where a root's store lives, with the standard library only: the CLI's daemon path resolves
the store before it imports anything else, and `config.IndexSettings` resolves it the same way."""

from __future__ import annotations

import os
from pathlib import Path

STORE_DIRNAME = ".direng"


def store_dir(root: str | os.PathLike, store: str | os.PathLike | None = None) -> Path:
    """The store directory of `root`: `store`, else DIRENG_STORE, else ROOT/.direng (resolved)."""
    root_path = Path(root).expanduser().resolve()
    chosen = store or os.environ.get("DIRENG_STORE") or root_path / STORE_DIRNAME
    return Path(chosen).expanduser().resolve()
