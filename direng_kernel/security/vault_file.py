"""The vault's encrypted file: the storage half of the secrets vault (`vault.Vault` adds the
audited API on top).

Layout (the vault directory is `$DIRENG_VAULT_DIR`, else `jupyter_data_dir()/direng`, 0700):

    vault.key         the Fernet key (urlsafe base64), mode 0600, created on the first write
    vault.json.enc    the Fernet token of `{"version": 1, "secrets": {NAME: VALUE}}`
    .vault.lock       flock(2) lock serialising writers (read-modify-write of the whole file)

`VaultFile(path=…)` may put the encrypted file elsewhere (a project store, say), but the key
stays in the user's directory (`key_path` overrides it for tests): a copied, committed or shared
store holds only ciphertext. Writes go to a temporary file in the same directory, are fsynced,
then renamed over the old file, so a crash, a wrong key or a corrupt file never loses what was
there: nothing is written unless the current file was decrypted first.

Reading the file here is not audited: `values()` and `state()` are for the process-wide
redactor (`scrub.global_redactor`), which must know every secret without releasing any. This
module imports nothing else from `security`, so the redactor's wiring can sit below the audit
log that the vault's own `get`/`set`/`delete` write to.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from ..config import user_data_path
from ..errors import DirEngError

__all__ = ["VaultFile", "VaultError", "vault_dir", "ENV_VAULT_DIR"]

ENV_VAULT_DIR = "DIRENG_VAULT_DIR"
KEY_FILE = "vault.key"
VAULT_FILE = "vault.json.enc"
LOCK_FILE = ".vault.lock"
_FORMAT_VERSION = 1


class VaultError(DirEngError):
    """The vault cannot be read or written (wrong key, corrupt file, bad name, permissions)."""


def vault_dir() -> Path:
    """`$DIRENG_VAULT_DIR`, else the user's Jupyter data dir's `direng`."""
    return user_data_path(ENV_VAULT_DIR)


def _ensure_dir(path: Path) -> None:
    try:
        if not path.is_dir():
            path.mkdir(parents=True, mode=0o700, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(path, 0o700)
    except OSError as err:
        raise VaultError(f"cannot create vault directory {path}: {err.strerror or err}") from None


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class VaultFile:
    """The encrypted file of named secrets: key handling, decryption, locked atomic writes."""

    def __init__(self, path: str | os.PathLike | None = None, *, key_path: str | os.PathLike | None = None):
        base = vault_dir()
        if path is None:
            self.path = base / VAULT_FILE
        else:
            p = Path(path).expanduser()
            self.path = p / VAULT_FILE if p.is_dir() else p
        self.key_path = Path(key_path).expanduser() if key_path is not None else base / KEY_FILE
        self._lock_path = self.path.parent / LOCK_FILE

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r}, key_path={str(self.key_path)!r})"

    # ------------------------------------------------------------------ key

    def _read_key(self) -> bytes | None:
        try:
            st = os.stat(self.key_path)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise VaultError(f"cannot read vault key {self.key_path}: {err.strerror or err}") from None
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise VaultError(f"vault key {self.key_path} is accessible by other users "
                             f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {self.key_path}")
        try:
            return self.key_path.read_bytes().strip()
        except OSError as err:
            raise VaultError(f"cannot read vault key {self.key_path}: {err.strerror or err}") from None

    def _create_key(self) -> bytes:
        from cryptography.fernet import Fernet

        _ensure_dir(self.key_path.parent)
        key = Fernet.generate_key()
        try:
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            existing = self._read_key()
            if existing is None:
                raise VaultError(f"vault key {self.key_path} vanished while being created") from None
            return existing
        except OSError as err:
            raise VaultError(f"cannot create vault key {self.key_path}: {err.strerror or err}") from None
        try:
            os.write(fd, key + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.key_path.parent)
        return key

    def _fernet(self, create: bool):
        from cryptography.fernet import Fernet

        key = self._read_key()
        if key is None:
            if self.path.exists():
                raise VaultError(f"vault {self.path} exists but its key {self.key_path} is missing: "
                                 "cannot decrypt it (restore the key file)")
            if not create:
                return None
            key = self._create_key()
        try:
            return Fernet(key)
        except (ValueError, TypeError):
            raise VaultError(f"vault key {self.key_path} is not a valid Fernet key") from None

    # ------------------------------------------------------------------ file

    def _load(self, fernet) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        try:
            token = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise VaultError(f"cannot read vault {self.path}: {err.strerror or err}") from None
        if fernet is None:
            raise VaultError(f"vault {self.path} exists but its key {self.key_path} is missing")
        try:
            plain = fernet.decrypt(token.strip())
        except (InvalidToken, ValueError, TypeError):
            raise VaultError(f"cannot decrypt vault {self.path} with key {self.key_path}: "
                             "wrong key or corrupt file (nothing was changed)") from None
        try:
            doc = json.loads(plain.decode("utf-8"))
            secrets = doc["secrets"]
            if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
                raise ValueError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise VaultError(f"vault {self.path} decrypted but its content is not a vault "
                             "(nothing was changed)") from None
        return dict(secrets)

    def _store(self, fernet, secrets: dict[str, str]) -> None:
        _ensure_dir(self.path.parent)
        data = json.dumps({"version": _FORMAT_VERSION, "secrets": secrets}, sort_keys=True).encode("utf-8")
        token = fernet.encrypt(data)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".vault.", suffix=".tmp", dir=self.path.parent)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, token)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            tmp = None
            _fsync_dir(self.path.parent)
        except OSError as err:
            raise VaultError(f"cannot write vault {self.path}: {err.strerror or err} "
                             "(the previous vault is intact)") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        _ensure_dir(self.path.parent)
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise VaultError(f"cannot lock vault {self.path}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def values(self) -> dict[str, str]:
        """{name: value} for the redactor. Internal: not audited, never print it."""
        return self._load(self._fernet(create=False))

    def state(self) -> tuple[int, int] | None:
        """(mtime_ns, size) of the encrypted file, or None: lets the redactor notice changes."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)
