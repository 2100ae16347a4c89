"""Run passports: the versioned JSON record that lets a lane run be replayed and compared.

A passport (`models.Passport`) names everything by hash: the lane notebook, the policy, the
code state (`gitstate.capture`), the Python environment (`environment`) and every input,
output and provider response (ArtifactRefs into the `ArtifactStore`). `PassportStore` keeps
them as pretty JSON at `<store>/passports/<run_id>.json`, written atomically.

Versioning: `CURRENT_SCHEMA` is what this code writes. Loading an older file runs it through
`_migrate`, one `_MIGRATIONS[v]` step per version (v → v+1), so old passports stay readable;
a file from a newer DirEng is refused with a clear error rather than misread. A file without
`schema_version` is v0, the pre-release layout (see `_v0_to_v1`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Callable, Optional

from pydantic import ValidationError

from ..errors import DirEngError, NotFoundError
from ..models import ArtifactRef, Passport
from .artifacts import ArtifactError, ArtifactStore

CURRENT_SCHEMA = 1
_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class PassportError(DirEngError):
    """Base class of passport failures."""


class InvalidRunId(PassportError):
    """A run id that cannot be a passport file name."""


class PassportMissing(PassportError, NotFoundError):
    """No passport for that run id."""


class PassportCorrupt(PassportError):
    """A passport file that cannot be parsed or does not match the schema."""


class PassportSchemaError(PassportError):
    """A passport written by a newer DirEng (unknown schema_version)."""


# -- environment and hashes ---------------------------------------------------------------


def installed_packages() -> list[str]:
    """Sorted, de-duplicated `name==version` of the installed distributions (PEP 503 names)."""
    from importlib.metadata import distributions

    seen = set()
    for dist in distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            seen.add(f"{re.sub(r'[-_.]+', '-', name).lower()}=={dist.version}")
    return sorted(seen)


def environment(store: Optional[ArtifactStore] = None) -> dict:
    """Python version, implementation, platform and the package lock hash.

    `lock_sha256` is the sha256 of the lock text (`name==version` lines, sorted, newline
    terminated); given a store, that text is saved as the artifact with the same id.
    """
    lock = "".join(f"{line}\n" for line in installed_packages()).encode()
    lock_sha = store.put_bytes(lock, "packages.lock", "text/plain").sha256 if store else hashlib.sha256(lock).hexdigest()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": lock.count(b"\n"),
        "lock_sha256": lock_sha,
    }


def notebook_sha256(path: Path | str) -> str:
    """sha256 of a notebook file's bytes (the lane notebook's identity in a passport)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def validate_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id) or ".." in run_id:
        raise InvalidRunId(f"invalid run id {str(run_id)[:80]!r}: use letters, digits, '.', '_' or '-'")
    return run_id


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- migrations ---------------------------------------------------------------------------


def _v0_to_v1(data: dict) -> dict:
    """v0 (pre-release): `id`/`task`/`notebook_sha256`, git and environment facts at top level,
    and one flat `artifacts` list of `{sha, name, size}` (all outputs)."""
    d = dict(data)
    out = {"run_id": d.pop("id", None), "task_id": d.pop("task", None),
           "lane_notebook_sha256": d.pop("notebook_sha256", None)}
    out["git"] = {k: d.pop(k) for k in ("commit", "branch", "remote", "dirty") if k in d}
    if "diff" in d:
        out["git"]["diff_sha256"] = d.pop("diff")
    out["environment"] = {k: d.pop(k) for k in ("python", "platform") if k in d}
    out["outputs"] = [{"sha256": a["sha"], "name": a.get("name", a["sha"]), "size": a.get("size", 0)}
                      for a in d.pop("artifacts", [])]
    out.update(d)
    out["schema_version"] = 1
    return out


_MIGRATIONS: dict[int, Callable[[dict], dict]] = {0: _v0_to_v1}


def _migrate(data: dict) -> dict:
    """Upgrade a passport dict step by step to CURRENT_SCHEMA (missing version = v0)."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise PassportCorrupt(f"schema_version {version!r} is not a version number")
    if version > CURRENT_SCHEMA:
        raise PassportSchemaError(
            f"schema_version {version} is newer than this DirEng understands ({CURRENT_SCHEMA}); upgrade direng_kernel")
    while version < CURRENT_SCHEMA:
        data = _MIGRATIONS[version](data)
        version = data["schema_version"]
    return data


# -- the store ----------------------------------------------------------------------------


class PassportStore:
    """Passports as JSON files under `<store_dir>/passports/`."""

    def __init__(self, store_dir: Path | str):
        self.root = Path(store_dir)
        self.dir = self.root / "passports"

    def path(self, run_id: str) -> Path:
        return self.dir / f"{validate_run_id(run_id)}.json"

    def save(self, passport: Passport) -> Path:
        """Write the passport atomically (temp file, fsync, rename) and return its path."""
        path = self.path(passport.run_id)
        _atomic_write(path, json.dumps(passport.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
        return path

    def load(self, run_id: str) -> Passport:
        """Read, migrate and validate a passport; failures name the run id and the problem."""
        path = self.path(run_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PassportMissing(f"no passport for run {run_id!r} in {self.dir}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise PassportCorrupt(f"passport {run_id!r} is unreadable: {err}") from err
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise PassportCorrupt(f"passport {run_id!r} is corrupt: invalid JSON ({err})") from err
        if not isinstance(data, dict):
            raise PassportCorrupt(f"passport {run_id!r} is corrupt: expected a JSON object")
        try:
            data = _migrate(data)
        except PassportSchemaError as err:
            raise PassportSchemaError(f"passport {run_id!r}: {err}") from None
        except PassportCorrupt as err:
            raise PassportCorrupt(f"passport {run_id!r} is corrupt: {err}") from None
        except (KeyError, TypeError, AttributeError) as err:
            raise PassportCorrupt(f"passport {run_id!r} is corrupt: cannot migrate ({err!r})") from err
        try:
            passport = Passport.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise PassportCorrupt(f"passport {run_id!r} is corrupt: {where}: {first['msg']}") from None
        if passport.run_id != run_id:
            raise PassportCorrupt(f"passport {run_id!r} is corrupt: it records run id {passport.run_id!r}")
        return passport

    def list(self) -> list[str]:
        """Run ids with a passport, sorted."""
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json") if not p.name.startswith(".tmp-"))

    @staticmethod
    def referenced(passport: Passport) -> list[tuple[str, str, Optional[ArtifactRef]]]:
        """(field, sha, ref-or-None) for every artifact the passport points at."""
        out: list[tuple[str, str, Optional[ArtifactRef]]] = []
        for field in ("inputs", "outputs", "provider_responses"):
            for i, ref in enumerate(getattr(passport, field)):
                out.append((f"{field}[{i}] {ref.name}", ref.sha256, ref))
        for field, data, key in (("git", passport.git, "diff_sha256"), ("git", passport.git, "content_sha256"),
                                 ("environment", passport.environment, "lock_sha256")):
            if data.get(key):
                out.append((f"{field}.{key}", data[key], None))
        return out

    def verify(self, passport: Passport, artifacts: ArtifactStore) -> list[str]:
        """Problems with the artifacts a passport references (empty when all exist and verify).

        Checked: inputs, outputs, provider_responses (content and recorded size), git.diff_sha256,
        git.content_sha256, environment.lock_sha256. The notebook and policy hashes are
        identities, not necessarily stored, and are not checked.
        """
        problems: list[str] = []
        for field, sha, ref in self.referenced(passport):
            try:
                artifacts.verify(sha)
                if ref is not None and artifacts.path(sha).stat().st_size != ref.size:
                    problems.append(f"{field}: artifact {sha} has size "
                                    f"{artifacts.path(sha).stat().st_size}, passport says {ref.size}")
            except ArtifactError as err:  # missing, corrupt or an invalid id
                problems.append(f"{field}: {err}")
        return problems


def render_replay_notebook(passport: Passport, dest: Path | str, root: Path | str | None = None) -> Path:
    """Write a papermill-ready `replay.ipynb` (into directory `dest`, or to `dest` if it ends .ipynb).

    Its `parameters`-tagged cell sets run_id, root (default: the passport's git root, else the
    cwd) and dry_run; the next cell calls `replay` of PEX's orchestrator (a replay is a task: PEX
    owns its lifecycle), named here as text, not imported.
    """
    import nbformat
    from nbformat import v4

    dest = Path(dest)
    path = dest if dest.suffix == ".ipynb" else dest / "replay.ipynb"
    root_s = str(root if root is not None else passport.git.get("root") or Path.cwd())
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["direng"] = {"run_id": passport.run_id, "lane": passport.lane, "task_id": passport.task_id}
    commit = passport.git.get("commit") or "no commit"
    nb.cells = [
        v4.new_markdown_cell(f"# Replay of run `{passport.run_id}`\n\nLane **{passport.lane}**, task "
                             f"`{passport.task_id}`, code `{commit}`{' (dirty)' if passport.git.get('dirty') else ''}, "
                             f"status `{passport.status}`.\n\nRun with papermill; override the parameters with `-p`."),
        v4.new_code_cell(f"run_id = {json.dumps(passport.run_id)}\nroot = {json.dumps(root_s)}\ndry_run = False",
                         metadata={"tags": ["parameters"]}),
        v4.new_code_cell("from direng_kernel.pex.orchestrator import replay\n\n"
                         "report = replay(run_id, root=root, dry_run=dry_run)\nreport"),
    ]
    nbformat.validate(nb)
    _atomic_write(path, nbformat.writes(nb))
    return path


__all__ = [
    "CURRENT_SCHEMA", "InvalidRunId", "PassportCorrupt", "PassportError", "PassportMissing",
    "PassportSchemaError", "PassportStore", "environment", "installed_packages", "notebook_sha256",
    "render_replay_notebook", "validate_run_id",
]
