"""A content-addressed, write-once artifact store: every run input and output, by sha256.

Layout under the store directory (normally `ROOT/.direng`)::

    artifacts/objects/ab/cdef0123…   # the bytes whose sha256 is "abcdef0123…", mode 0444
    artifacts/objects/.tmp-XXXXXXXX  # a write in progress (or a crash's leftover)

The id of an artifact is the lowercase hex sha256 of its bytes, so identical content is
stored once and any change to an object is detectable. A write hashes while it streams into
a temp file in `objects/`, fsyncs it, makes it read-only and `os.replace`s it into place,
so an object is either absent or complete: a crash mid-write leaves only a `.tmp-` file,
which `verify_all` reports and `gc_temp` removes. An object that already exists is verified,
never rewritten. Every read re-hashes the bytes (`ArtifactCorrupt` if they changed), and
ids are validated before they touch a path, so `../x` can never escape the store.

The store keeps bytes, not names: an `ArtifactRef` (sha256, name, size, media type) is what
callers record, e.g. in a passport.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import stat
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Literal, Optional

from ..errors import DirEngError, NotFoundError
from ..models import ArtifactRef

_SHA_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
TEMP_PREFIX = ".tmp-"
OCTET = "application/octet-stream"


class ArtifactError(DirEngError):
    """Base class of artifact-store failures."""


class InvalidArtifactId(ArtifactError):
    """An artifact id that is not a lowercase 64-hex sha256 digest."""


class ArtifactMissing(ArtifactError, NotFoundError):
    """No object with that id in the store."""


class ArtifactCorrupt(ArtifactError):
    """An object whose bytes no longer hash to its id."""


@dataclass(frozen=True)
class VerifyProblem:
    """One finding of `verify_all`: `kind` is corrupt | permissions | temp | stray."""

    kind: Literal["corrupt", "permissions", "temp", "stray"]
    path: str
    message: str
    sha256: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


def validate_sha(s: object) -> str:
    """Return `s` if it is a lowercase 64-hex sha256 digest, else raise InvalidArtifactId."""
    if not isinstance(s, str) or not _SHA_RE.fullmatch(s):
        raise InvalidArtifactId(f"invalid artifact id {str(s)[:80]!r}: expected a lowercase 64-hex sha256")
    return s


def _media_type(name: str, media_type: Optional[str]) -> str:
    return media_type or mimetypes.guess_type(name)[0] or OCTET


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _hash_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class ArtifactStore:
    """Content-addressed objects under `<root>/artifacts/` (root is the DirEng store dir)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.base = self.root / "artifacts"
        self.objects = self.base / "objects"

    # -- addressing -------------------------------------------------------------------------

    def path(self, sha: str) -> Path:
        """Where the object `sha` lives (whether or not it exists); validates the id."""
        sha = validate_sha(sha)
        return self.objects / sha[:2] / sha[2:]

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def iter_shas(self) -> Iterator[str]:
        """Ids of every well-formed object path in the store (content not checked)."""
        if not self.objects.is_dir():
            return
        for fan in sorted(self.objects.iterdir()):
            if not (fan.is_dir() and re.fullmatch(r"[0-9a-f]{2}", fan.name)):
                continue
            for obj in sorted(fan.iterdir()):
                sha = fan.name + obj.name
                if obj.is_file() and not obj.is_symlink() and _SHA_RE.fullmatch(sha):
                    yield sha

    # -- writing ----------------------------------------------------------------------------

    def put_bytes(self, data: bytes, name: str, media_type: Optional[str] = None) -> ArtifactRef:
        """Store `data` (once) and return its reference."""
        sha = hashlib.sha256(data).hexdigest()
        ref = ArtifactRef(sha256=sha, name=name, size=len(data), media_type=_media_type(name, media_type))
        if self.exists(sha):
            self.verify(sha)
            return ref
        tmp = self._temp()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            self._commit(tmp, sha)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return ref

    def put_file(self, path: Path | str, name: Optional[str] = None, media_type: Optional[str] = None) -> ArtifactRef:
        """Store a file's bytes, hashing while streaming them into a temp file."""
        src = Path(path)
        name = name or src.name
        tmp = self._temp()
        try:
            h, size = hashlib.sha256(), 0
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    h.update(chunk)
                    fout.write(chunk)
                    size += len(chunk)
            sha = h.hexdigest()
            if self.exists(sha):
                tmp.unlink()
                self.verify(sha)
            else:
                self._commit(tmp, sha)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return ArtifactRef(sha256=sha, name=name, size=size, media_type=_media_type(name, media_type))

    def _temp(self) -> Path:
        self.objects.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.objects)
        os.close(fd)
        return Path(name)

    def _commit(self, tmp: Path, sha: str) -> None:
        """fsync the temp file, make it read-only and move it into place atomically."""
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o444)
        dest = self.path(sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        _fsync_dir(self.objects)

    # -- reading ----------------------------------------------------------------------------

    def _existing(self, sha: str) -> Path:
        p = self.path(sha)
        if not p.is_file():
            raise ArtifactMissing(f"artifact {sha} is missing from {self.objects}")
        return p

    def verify(self, sha: str) -> None:
        """Raise ArtifactMissing / ArtifactCorrupt unless the object's bytes hash to `sha`."""
        actual, _ = _hash_file(self._existing(sha))
        if actual != sha:
            raise ArtifactCorrupt(f"artifact {sha} is corrupt: its content hashes to {actual}")

    def get_bytes(self, sha: str) -> bytes:
        """The object's bytes, verified against its id."""
        data = self._existing(sha).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise ArtifactCorrupt(f"artifact {sha} is corrupt: its content hashes to {actual}")
        return data

    def open(self, sha: str) -> BinaryIO:
        """A binary file object on the object, after verifying its whole content."""
        self.verify(sha)
        return open(self.path(sha), "rb")

    # -- maintenance ------------------------------------------------------------------------

    def temp_files(self) -> list[Path]:
        if not self.objects.is_dir():
            return []
        return sorted(p for p in self.objects.rglob(TEMP_PREFIX + "*") if p.is_file() or p.is_symlink())

    def gc_temp(self, min_age_s: float = 0.0) -> list[Path]:
        """Remove leftover temp files (older than `min_age_s`, to spare writes in progress)."""
        removed, now = [], time.time()
        for p in self.temp_files():
            try:
                if now - p.lstat().st_mtime >= min_age_s:
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:
                pass
        return removed

    def verify_all(self) -> list[VerifyProblem]:
        """Check every object (content, read-only mode) and report temp and stray files."""
        problems: list[VerifyProblem] = []
        if not self.objects.is_dir():
            return problems
        for p in sorted(self.objects.rglob("*")):
            rel = p.relative_to(self.objects).as_posix()
            if p.name.startswith(TEMP_PREFIX):
                problems.append(VerifyProblem("temp", str(p), f"leftover temp file {rel} (an interrupted write; run gc_temp)"))
                continue
            if p.is_dir() and not p.is_symlink():
                if not re.fullmatch(r"[0-9a-f]{2}", rel):
                    problems.append(VerifyProblem("stray", str(p), f"unexpected directory {rel}"))
                continue
            sha = rel.replace("/", "")
            if p.is_symlink() or not p.is_file() or not re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{62}", rel):
                problems.append(VerifyProblem("stray", str(p), f"unexpected file {rel}"))
                continue
            try:
                actual, _ = _hash_file(p)
            except OSError as err:
                problems.append(VerifyProblem("corrupt", str(p), f"artifact {sha} is unreadable: {err.strerror}", sha))
                continue
            if actual != sha:
                problems.append(VerifyProblem("corrupt", str(p), f"artifact {sha} is corrupt: its content hashes to {actual}", sha))
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o222:
                problems.append(VerifyProblem("permissions", str(p), f"artifact {sha} is writable (mode {mode:o}, expected 444)", sha))
        return problems

    def export(self, shas: Optional[Iterable[str | ArtifactRef]], dest: Path | str) -> Path:
        """Copy objects (all when `shas` is None) into `dest/<sha>`, verified, plus `manifest.json`.

        Items may be ArtifactRefs, whose names and media types then go into the manifest.
        Returns the manifest's path.
        """
        dest = Path(dest)
        items: list[str | ArtifactRef] = list(self.iter_shas()) if shas is None else list(shas)
        refs: dict[str, Optional[ArtifactRef]] = {}
        for item in items:
            sha = validate_sha(item.sha256 if isinstance(item, ArtifactRef) else item)
            self._existing(sha)
            ref = item if isinstance(item, ArtifactRef) else None
            if ref is not None or sha not in refs:
                refs[sha] = ref
        dest.mkdir(parents=True, exist_ok=True)
        entries = []
        for sha, ref in refs.items():
            out = dest / sha
            tmp = dest / f"{TEMP_PREFIX}{sha}"
            h = hashlib.sha256()
            with open(self.path(sha), "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    h.update(chunk)
                    fout.write(chunk)
            if h.hexdigest() != sha:
                tmp.unlink()
                raise ArtifactCorrupt(f"artifact {sha} is corrupt: its content hashes to {h.hexdigest()}")
            os.replace(tmp, out)
            entry = {"sha256": sha, "file": sha, "size": out.stat().st_size}
            if ref is not None:
                entry.update(name=ref.name, media_type=ref.media_type)
            entries.append(entry)
        manifest = dest / "manifest.json"
        manifest.write_text(json.dumps({"artifacts": entries}, indent=2) + "\n", encoding="utf-8")
        return manifest


__all__ = [
    "ArtifactCorrupt", "ArtifactError", "ArtifactMissing", "ArtifactStore", "InvalidArtifactId",
    "VerifyProblem", "validate_sha",
]
