"""The secrets vault: named secrets, encrypted at rest with Fernet, the key kept elsewhere.

`Vault(path=…, key_path=…)` is the audited API over the encrypted file that `vault_file.VaultFile`
keeps (layout, key handling and crash-safe writes are described there).

Every `get` is audited (`secret.access`, success or not); `set` and `delete` are audited
too. Values read or written here are registered with the global redactor
(`scrub.register_secret`), so they are masked (`[secret:NAME]`) wherever the process persists
text.
"""

from __future__ import annotations

import re

from ..errors import NotFoundError
from . import audit
from .scrub import register_secret
from .vault_file import VaultError, VaultFile

__all__ = ["Vault", "VaultError", "SecretNotFoundError", "NAME_RE"]

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class SecretNotFoundError(VaultError, NotFoundError):
    """No secret of that name in the vault."""


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise VaultError(f"invalid secret name {name!r}: use letters, digits, '_', '.', '-' "
                         "and start with a letter or '_'")
    return name


class Vault(VaultFile):
    """Named secrets encrypted at rest. Names match `[A-Za-z_][A-Za-z0-9_.-]*`."""

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
        register_secret(name, value)
        audit.record("secret.set", actor=actor, name=name, replaced=existed, vault=str(self.path))

    def get(self, name: str, *, actor: str | None = None) -> str:
        """The value of secret `name` (audited as `secret.access`, found or not)."""
        _check_name(name)
        try:
            secrets = self._load(self._fernet(create=False))
        except VaultError as err:
            audit.record("secret.access", actor=actor, name=name, ok=False, error=str(err), vault=str(self.path))
            raise
        if name not in secrets:
            audit.record("secret.access", actor=actor, name=name, ok=False, error="not found", vault=str(self.path))
            raise SecretNotFoundError(f"no secret named {name!r} in vault {self.path}")
        # audit before handing out: if the access cannot be recorded, the secret is not released
        audit.record("secret.access", actor=actor, name=name, ok=True, vault=str(self.path))
        value = secrets[name]
        register_secret(name, value)
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
        audit.record("secret.delete", actor=actor, name=name, vault=str(self.path))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._load(self._fernet(create=False))
