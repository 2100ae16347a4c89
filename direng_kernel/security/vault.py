"""The secrets vault: named secrets, encrypted at rest with Fernet, the key kept elsewhere.

Layout (the vault directory is `$DIRENG_VAULT_DIR`, else `jupyter_data_dir()/direng`, 0700):

    vault.key         the Fernet key (urlsafe base64), mode 0600, created on the first `set`
    vault.json.enc    the Fernet token of `{"version": 1, "secrets": {NAME: VALUE}}`
    .vault.lock       flock(2) lock serialising writers (read-modify-write of the whole file)

`Vault(path=…)` may put the encrypted file elsewhere (a project store, say), but the key stays
in the user's directory (`key_path` overrides it for tests): a copied, committed or shared
store holds only ciphertext. Writes go to a temporary file in the same directory, are
fsynced, then renamed over the old file, so a crash, a wrong key or a corrupt file never
loses what was there: nothing is written unless the current file was decrypted first.

Every `get` is audited (`secret.access`, success or not); `set` and `delete` are audited
too. Values read or written here are registered with the global redactor, so they are
masked (`[secret:NAME]`) wherever the process persists text.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from ..config import user_data_path
from ..errors import DirEngError, NotFoundError

__all__ = ["Vault", "VaultError", "SecretNotFoundError", "vault_dir", "NAME_RE", "ENV_VAULT_DIR"]

ENV_VAULT_DIR = "DIRENG_VAULT_DIR"
KEY_FILE = "vault.key"
VAULT_FILE = "vault.json.enc"
LOCK_FILE = ".vault.lock"
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_FORMAT_VERSION = 1


class VaultError(DirEngError):
    """The vault cannot be read or written (wrong key, corrupt file, bad name, permissions)."""


class SecretNotFoundError(VaultError, NotFoundError):
    """No secret of that name in the vault."""


def vault_dir() -> Path:
    """`$DIRENG_VAULT_DIR`, else the user's Jupyter data dir's `direng`."""
    return user_data_path(ENV_VAULT_DIR)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise VaultError(f"invalid secret name {name!r}: use letters, digits, '_', '.', '-' "
                         "and start with a letter or '_'")
    return name


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


class Vault:
    """Named secrets encrypted at rest. Names match `[A-Za-z_][A-Za-z0-9_.-]*`."""

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
        return f"Vault(path={str(self.path)!r}, key_path={str(self.key_path)!r})"

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
        import fcntl

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

    # ------------------------------------------------------------------ API

    def set(self, name: str, value: str, *, actor: str | None = None) -> None:
        """Store (or replace) secret `name`; creates the key and the vault on first use."""
        _check_name(name)
        if not isinstance(value, str) or value == "":
            raise VaultError(f"secret {name!r}: the value must be a non-empty string")
        with self._locked():
            fernet = self._fernet(create=True)
            secrets = self._load(fernet)
            existed = name in secrets
            secrets[name] = value
            self._store(fernet, secrets)
        _learn(name, value)
        _audit("secret.set", actor, name=name, replaced=existed, vault=str(self.path))

    def get(self, name: str, *, actor: str | None = None) -> str:
        """The value of secret `name` (audited as `secret.access`, found or not)."""
        _check_name(name)
        try:
            secrets = self._load(self._fernet(create=False))
        except VaultError as err:
            _audit("secret.access", actor, name=name, ok=False, error=str(err), vault=str(self.path))
            raise
        if name not in secrets:
            _audit("secret.access", actor, name=name, ok=False, error="not found", vault=str(self.path))
            raise SecretNotFoundError(f"no secret named {name!r} in vault {self.path}")
        # audit before handing out: if the access cannot be recorded, the secret is not released
        _audit("secret.access", actor, name=name, ok=True, vault=str(self.path))
        value = secrets[name]
        _learn(name, value)
        return value

    def list(self) -> list[str]:
        """Secret names, sorted (never values)."""
        return sorted(self._load(self._fernet(create=False)))

    def delete(self, name: str, *, actor: str | None = None) -> None:
        """Remove secret `name` (SecretNotFoundError when absent)."""
        _check_name(name)
        with self._locked():
            fernet = self._fernet(create=False)
            secrets = self._load(fernet)
            if name not in secrets:
                raise SecretNotFoundError(f"no secret named {name!r} in vault {self.path}")
            del secrets[name]
            self._store(fernet, secrets)
        _audit("secret.delete", actor, name=name, vault=str(self.path))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._load(self._fernet(create=False))

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


def _learn(name: str, value: str) -> None:
    from .redact import register_secret

    register_secret(name, value)


def _audit(event: str, actor: str | None, **data) -> None:
    from . import audit

    audit.record(event, actor=actor, **data)
