"""Versioned agent contracts: the system prompts generative providers work under.

A contract is a Markdown file (`docs/contracts/DIRENG_SYSTEM_PROMPT.md` for DirEng's chat,
`PEX_SYSTEM_PROMPT.md` for models that lanes consult) with a `Version: YYYY-MM-DD-NNN` line. The
whole file is the system prompt, and its version travels with every request (`ProviderRequest
.contract_version`), so each usage record and each passport says which contract a model worked
under. A missing file, or one without a version, is a `ContractError`: the generative provider
is not called, and DirEng still answers from the index.

Where the files are looked for, first found: `$DIRENG_CONTRACTS_DIR`; the package's
`contracts/` folder (a wheel ships them there); the repository's `docs/contracts/` (a checkout).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import DirEngError

DIRENG = "DIRENG_SYSTEM_PROMPT"
PEX = "PEX_SYSTEM_PROMPT"
_VERSION = re.compile(r"^Version:\s*(\d{4}-\d{2}-\d{2}-\d{3})\s*$", re.M)


class ContractError(DirEngError):
    """A contract file is missing, unreadable or unversioned."""


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    text: str
    path: Path


def search_path() -> list[Path]:
    env = os.environ.get("DIRENG_CONTRACTS_DIR")
    if env:  # set: the only place (a deployment pins its contracts there)
        return [Path(env).expanduser()]
    here = Path(__file__).resolve().parent
    return [here / "contracts", here.parent / "docs" / "contracts"]


def load(name: str) -> Contract:
    """The contract `name` (e.g. `DIRENG`), or a ContractError saying what is wrong with it."""
    places = search_path()
    path = next((d / f"{name}.md" for d in places if (d / f"{name}.md").is_file()), None)
    if path is None:
        raise ContractError(f"agent contract {name}.md not found (looked in {', '.join(map(str, places))})")
    return _read(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _read(path: Path, _mtime: int) -> Contract:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"agent contract {path} cannot be read: {exc}") from None
    match = _VERSION.search(text)
    if match is None:
        raise ContractError(f"agent contract {path} has no 'Version: YYYY-MM-DD-NNN' line")
    return Contract(path.stem, match.group(1), text, path)
