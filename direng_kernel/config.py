"""Settings for the engine, from arguments first and `DIRENG_*` environment variables second.

The server maps its traitlets onto the same fields. Nothing here imports anything heavy, not even
pydantic: every command over an index, the one-shot search among them, starts by reading these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .locations import store_dir


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(kw_only=True)
class IndexSettings:
    root: Path
    store: Path
    max_file_bytes: int = field(default_factory=lambda: _env_int("DIRENG_MAX_FILE_BYTES", 1_000_000))
    # A notebook is read up to this size (its outputs may be huge); its *sources* must still fit
    # in max_file_bytes to be indexed.
    max_notebook_bytes: int = field(default_factory=lambda: _env_int("DIRENG_MAX_NOTEBOOK_BYTES", 256_000_000))
    # Long symbols are split into parts of this many lines so each chunk stays embeddable.
    chunk_lines: int = field(default_factory=lambda: _env_int("DIRENG_CHUNK_LINES", 60))
    # Files written per transaction: smaller batches lose less work to a crash, larger are faster.
    batch_files: int = field(default_factory=lambda: _env_int("DIRENG_INDEX_BATCH", 200))
    embed_batch: int = field(default_factory=lambda: _env_int("DIRENG_EMBED_BATCH", 32))

    @classmethod
    def for_root(cls, root: str | os.PathLike, store: str | os.PathLike | None = None) -> "IndexSettings":
        return cls(root=Path(root).expanduser().resolve(), store=store_dir(root, store))


def offline_env() -> None:
    """Make Hugging Face libraries and chromadb stay off the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def user_cache_dir() -> Path:
    base = os.environ.get("DIRENG_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "direng" if "DIRENG_CACHE_DIR" not in os.environ else Path(base)
    return path


def user_data_path(env_var: str, *parts: str) -> Path:
    """`$env_var` when set, else the user's Jupyter data dir / `direng` / parts: where per-user
    state (signing keys, the vault, the audit log) lives, so the CLI and the server agree."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir(), "direng", *parts)
