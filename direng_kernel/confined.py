"""Confined, no-follow file access under a root directory.

Every read of repository content at answer time (excerpts, tool reads, graph code) and every
file that PAS reads or writes in a run folder goes through here, because a path that was
checked once can be swapped for a symlink before it is opened. The idea: resolve the path
lexically (or, for repository reads, through in-root symlinks) and refuse anything that leaves
the root; then open the result one component at a time relative to the previous directory's
descriptor with `O_NOFOLLOW`, so a component replaced by a link after the check fails with
ELOOP instead of being followed. Writes go to a fresh `O_EXCL` temp file renamed over the
target, which replaces a planted link or hard link instead of writing through it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path, PurePosixPath

from .errors import DirEngError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer appears.
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC


class ConfinementError(DirEngError):
    """A path that leaves its root, goes through a symlink it may not, or is no regular file."""


def relative_parts(root: Path, path: str | os.PathLike, *, follow_links: bool) -> tuple[str, ...]:
    """The components of `path` below `root`, or ConfinementError.

    `path` may be relative to `root` or absolute inside it. With `follow_links` (repository
    reads) symlinks are resolved first and the target must lie under the root; without it (run
    folders, whose content sandboxed programs may have written) the path is taken lexically and
    `..` is refused outright."""
    raw = os.fspath(path)
    if not raw or "\x00" in raw:
        raise ConfinementError("empty or invalid path")
    root = Path(root).resolve()
    candidate = Path(raw) if Path(raw).is_absolute() else root / raw
    if follow_links:
        try:
            target = candidate.resolve()
        except (RuntimeError, OSError) as err:  # a symlink loop (RuntimeError before Python 3.13)
            raise ConfinementError(f"path {raw} is a symlink loop") from err
    else:
        if ".." in PurePosixPath(raw).parts:
            raise ConfinementError(f"path {raw} contains '..'")
        target = Path(os.path.normpath(candidate))
    if not target.is_relative_to(root):
        raise ConfinementError(f"path {raw} leaves {root}")
    return target.relative_to(root).parts


def _open_dir(root: Path, parts: tuple[str, ...], *, create: bool = False) -> int:
    """A descriptor of root/parts, walked with O_NOFOLLOW (made when `create`)."""
    fd = os.open(Path(root).resolve(), os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        for part in parts:
            try:
                nfd = os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ConfinementError(f"{'/'.join(parts)}: a folder on the way is a symlink or not a folder") from None
        raise
    return fd


def _open_leaf(root: Path, path: str | os.PathLike, flags: int, *, follow_links: bool, create: bool) -> int:
    """Open the last component of a confined path with `flags` (O_NOFOLLOW among them)."""
    parts = relative_parts(root, path, follow_links=follow_links)
    if not parts:
        raise ConfinementError(f"{path} is the root folder, not a file")
    dirfd = _open_dir(root, parts[:-1], create=create)
    try:
        return os.open(parts[-1], flags, 0o644, dir_fd=dirfd)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ConfinementError(f"{path} is a symlink") from None
        raise
    finally:
        os.close(dirfd)


def open_file(root: Path, path: str | os.PathLike, *, follow_links: bool = True) -> int:
    """A read-only descriptor of a regular file under `root`, opened without following links."""
    fd = _open_leaf(root, path, _FILE, follow_links=follow_links, create=False)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfinementError(f"{path} is not a regular file")
    return fd


def read_bytes(root: Path, path: str | os.PathLike, *, follow_links: bool = True, limit: int | None = None) -> bytes:
    """The bytes of a confined regular file (the first `limit` bytes when given)."""
    with os.fdopen(open_file(root, path, follow_links=follow_links), "rb") as fh:
        return fh.read() if limit is None else fh.read(limit)


def read_text(root: Path, path: str | os.PathLike, *, follow_links: bool = True, errors: str = "replace") -> str:
    return read_bytes(root, path, follow_links=follow_links).decode("utf-8", errors)


def write_bytes(root: Path, path: str | os.PathLike, data: bytes, *, mode: int = 0o644) -> Path:
    """Atomically write `data` to root/path (folders made), never through a link; returns the path."""
    parts = relative_parts(root, path, follow_links=False)
    if not parts:
        raise ConfinementError(f"{path} is the root folder, not a file")
    dirfd = _open_dir(root, parts[:-1], create=True)
    tmp = f".{parts[-1]}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, mode, dir_fd=dirfd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.rename(tmp, parts[-1], src_dir_fd=dirfd, dst_dir_fd=dirfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dirfd)
            except OSError:
                pass
            raise
    except IsADirectoryError:
        raise ConfinementError(f"{path} is a folder") from None
    finally:
        os.close(dirfd)
    return Path(root).resolve().joinpath(*parts)


def append_bytes(root: Path, path: str | os.PathLike, data: bytes) -> None:
    """Append to root/path (created if missing), refusing a link, a hard link or a non-file."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
    fd = _open_leaf(root, path, flags, follow_links=False, create=True)
    with os.fdopen(fd, "ab") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise ConfinementError(f"{path} is not a plain file of its own (a hard link or a special file)")
        fh.write(data)
