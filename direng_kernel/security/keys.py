"""RS256 signing keys for DirEng tokens: generation, storage, rotation, JWKS.

Layout of the keys directory (`DIRENG_KEYS_DIR`, else `jupyter_data_dir()/direng/keys`,
mode 0700):

    keys.json            manifest: the active kid and every key's creation/retirement times
    <kid>.key.pem        the ACTIVE key's private key (PKCS#8 PEM, mode 0600)
    <kid>.pub.pem        public keys (SubjectPublicKeyInfo PEM), one per valid key
    .lock                flock(2) lock serialising generation, rotation and pruning

The `kid` is the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key. A key pair
(RSA 3072) is generated on first use. `rotate_keys()` makes a new active key, deletes the old
private key and keeps the old public key valid for `MAX_TTL_S` + leeway (no token can live
longer), after which it is pruned. Processes sharing a directory (the server, the CLI, a
kernel) see each other's rotations: the manifest is re-read whenever it changes on disk.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..config import user_data_path
from ..errors import DirEngError

log = logging.getLogger(__name__)

KEY_BITS = 3072
ALGORITHM = "RS256"
MAX_TTL_S = 30 * 24 * 3600  # the longest a token may live (mint refuses more; verify rejects more)
LEEWAY_S = 30               # clock skew tolerated on exp/nbf/iat
MANIFEST = "keys.json"
ENV_KEYS_DIR = "DIRENG_KEYS_DIR"
_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class KeyStoreError(DirEngError):
    """The keys directory cannot be read or written, or its contents are damaged."""


def default_keys_dir() -> Path:
    """`$DIRENG_KEYS_DIR`, else the user's Jupyter data dir's `direng/keys`."""
    return user_data_path(ENV_KEYS_DIR, "keys")


def _b64u_uint(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk_members(public_key) -> dict[str, str]:
    """The RSA public key's required JWK members (`e`, `kty`, `n`)."""
    numbers = public_key.public_numbers()
    return {"e": _b64u_uint(numbers.e), "kty": "RSA", "n": _b64u_uint(numbers.n)}


def thumbprint(public_key) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 over the lexicographically ordered required members."""
    canonical = json.dumps(public_jwk_members(public_key), separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class KeyInfo:
    """One key of the manifest. `retired`/`valid_until` are None for the active key."""

    kid: str
    created: float
    retired: float | None = None
    valid_until: float | None = None

    @property
    def active(self) -> bool:
        return self.retired is None

    def to_json(self) -> dict:
        return {"kid": self.kid, "alg": ALGORITHM, "created": self.created, "retired": self.retired,
                "valid_until": self.valid_until}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: object  # cryptography RSAPrivateKey


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` via a temporary file created with `mode` (never wider), then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class KeyStore:
    """The key pairs in one directory. Thread-safe; safe across processes (flock)."""

    def __init__(self, directory: str | os.PathLike | None = None, *, max_ttl_s: int = MAX_TTL_S,
                 clock: Callable[[], float] = time.time):
        self.directory = Path(directory).expanduser() if directory else default_keys_dir()
        self.max_ttl_s = int(max_ttl_s)
        self.clock = clock
        self._lock = threading.RLock()
        self._stamp: tuple | None = None
        self._infos: list[KeyInfo] = []
        self._active: str | None = None
        self._public: dict[str, object] = {}
        self._signing: SigningKey | None = None

    def __repr__(self) -> str:
        return f"KeyStore({str(self.directory)!r})"

    # -- files ------------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def private_path(self, kid: str) -> Path:
        return self.directory / f"{kid}.key.pem"

    def public_path(self, kid: str) -> Path:
        return self.directory / f"{kid}.pub.pem"

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyStoreError(f"cannot create the keys directory {self.directory}: {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self._ensure_dir()
        try:
            fh = open(self.directory / ".lock", "a")
        except OSError as exc:
            raise KeyStoreError(f"cannot lock the keys directory {self.directory}: {exc.strerror or exc}") from None
        with fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _manifest_stamp(self) -> tuple | None:
        try:
            st = self.manifest_path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.manifest_path}: {exc.strerror or exc}") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read_manifest(self) -> tuple[str | None, list[KeyInfo]]:
        try:
            data = json.loads(self.manifest_path.read_text())
            infos = [KeyInfo(kid=str(k["kid"]), created=float(k["created"]),
                             retired=None if k.get("retired") is None else float(k["retired"]),
                             valid_until=None if k.get("valid_until") is None else float(k["valid_until"]))
                     for k in data.get("keys", [])]
            active = data.get("active")
        except FileNotFoundError:
            return None, []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyStoreError(f"the key manifest {self.manifest_path} is damaged: {exc}") from None
        return (str(active) if active else None), infos

    def _write_manifest(self, active: str | None, infos: list[KeyInfo]) -> None:
        doc = {"version": 1, "algorithm": ALGORITHM, "max_ttl_s": self.max_ttl_s, "active": active,
               "keys": [i.to_json() for i in infos]}
        _write_atomic(self.manifest_path, (json.dumps(doc, indent=2) + "\n").encode(), 0o644)

    def _refresh(self, force: bool = False) -> None:
        """Re-read the manifest if it changed on disk (another process rotated, ...)."""
        stamp = self._manifest_stamp()
        if not force and stamp == self._stamp and self._stamp is not None:
            return
        active, infos = self._read_manifest()
        now = self.clock()
        infos = [i for i in infos if i.valid_until is None or i.valid_until > now]
        self._stamp, self._active, self._infos = stamp, active, infos
        keep = {i.kid for i in infos}
        self._public = {k: v for k, v in self._public.items() if k in keep}
        if self._signing is not None and self._signing.kid != active:
            self._signing = None

    # -- generation, rotation, pruning ------------------------------------------------------------
    def _generate(self) -> str:
        """Make a key pair and write its files (caller holds the locks); returns its kid."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        public_key = private_key.public_key()
        kid = thumbprint(public_key)
        pem_private = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
        pem_public = public_key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        try:
            _write_atomic(self.private_path(kid), pem_private, 0o600)
            _write_atomic(self.public_path(kid), pem_public, 0o644)
        except OSError as exc:
            raise KeyStoreError(f"cannot write a key to {self.directory}: {exc.strerror or exc}") from None
        self._public[kid] = public_key
        self._signing = SigningKey(kid, private_key)
        log.info("DirEng: generated signing key %s in %s", kid, self.directory)
        return kid

    def _prune_files(self, infos: list[KeyInfo], active: str | None) -> None:
        keep_public = {i.kid for i in infos}
        for path in self.directory.glob("*.pem"):
            kid, _, kind = path.name.partition(".")
            if (kind == "pub.pem" and kid not in keep_public) or (kind == "key.pem" and kid != active):
                with contextlib.suppress(OSError):
                    path.unlink()

    def ensure_active(self) -> str:
        """The active key's kid, generating the first key pair if there is none."""
        with self._lock:
            self._refresh()
            if self._active and self._has_private(self._active):
                return self._active
            with self._file_lock():
                self._refresh(force=True)
                if self._active and self._has_private(self._active):
                    return self._active
                return self._new_active_key()

    def _valid(self) -> list[KeyInfo]:
        """The manifest's keys that are still valid now (a retired key expires at `valid_until`)."""
        now = self.clock()
        return [i for i in self._infos if i.valid_until is None or i.valid_until > now]

    def _has_private(self, kid: str) -> bool:
        return (self._signing is not None and self._signing.kid == kid) or self.private_path(kid).exists()

    def _retire(self, info: KeyInfo, now: float) -> KeyInfo:
        return KeyInfo(kid=info.kid, created=info.created, retired=now, valid_until=now + self.max_ttl_s + LEEWAY_S)

    def _new_active_key(self) -> str:
        """Generate a key, make it active and retire the current one (call under the file lock)."""
        now = self.clock()
        infos = [self._retire(i, now) if i.active else i for i in self._infos]
        kid = self._generate()
        infos.append(KeyInfo(kid=kid, created=now))
        self._write_manifest(kid, infos)
        self._prune_files(infos, kid)
        self._refresh(force=True)
        return kid

    def rotate(self) -> str:
        """Make a new active key; the previous ones stay valid until their tokens have expired."""
        with self._lock, self._file_lock():
            self._refresh(force=True)
            return self._new_active_key()

    def prune(self) -> list[str]:
        """Delete the retired keys whose tokens can no longer be valid; returns their kids."""
        with self._lock, self._file_lock():
            active, infos = self._read_manifest()
            now = self.clock()
            keep = [i for i in infos if i.valid_until is None or i.valid_until > now]
            gone = [i.kid for i in infos if i not in keep]
            if gone:
                self._write_manifest(active, keep)
            self._prune_files(keep, active)
            self._refresh(force=True)
            return gone

    # -- reading ----------------------------------------------------------------------------------
    def signing_key(self) -> SigningKey:
        """The active key pair (generated on first use)."""
        from cryptography.hazmat.primitives import serialization

        with self._lock:
            kid = self.ensure_active()
            if self._signing is not None and self._signing.kid == kid:
                return self._signing
            path = self.private_path(kid)
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
                if mode & 0o077:
                    log.warning("DirEng: %s was readable by others (mode %o); restricting it to 0600", path, mode)
                    os.chmod(path, 0o600)
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as exc:
                raise KeyStoreError(f"cannot load the signing key {path}: {exc}") from None
            self._signing = SigningKey(kid, key)
            return self._signing

    def public_key(self, kid: str):
        """The public key for `kid` if it is a valid (active or not yet pruned) key, else None."""
        if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
            return None
        with self._lock:
            self._refresh()
            if not any(i.kid == kid for i in self._valid()):
                return None
            key = self._public.get(kid)
            if key is None:
                from cryptography.hazmat.primitives import serialization

                try:
                    key = serialization.load_pem_public_key(self.public_path(kid).read_bytes())
                except (OSError, ValueError, TypeError) as exc:
                    log.warning("DirEng: cannot load public key %s: %s", kid, exc)
                    return None
                if thumbprint(key) != kid:
                    log.warning("DirEng: public key file for %s does not match its kid; ignored", kid)
                    return None
                self._public[kid] = key
            return key

    def key_info(self, kid: str) -> KeyInfo | None:
        with self._lock:
            self._refresh()
            return next((i for i in self._valid() if i.kid == kid), None)

    def keys(self) -> list[KeyInfo]:
        """Every valid key, oldest first (the active one last)."""
        with self._lock:
            self._refresh()
            return self._valid()

    @property
    def active_kid(self) -> str | None:
        with self._lock:
            self._refresh()
            return self._active

    def jwks(self) -> dict:
        """`{"keys": [JWK, ...]}`: the public key of every valid key (RFC 7517)."""
        out = []
        for info in self.keys():
            key = self.public_key(info.kid)
            if key is not None:
                out.append({**public_jwk_members(key), "kid": info.kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": out}


_stores: dict[str, KeyStore] = {}
_stores_lock = threading.Lock()


def get_keystore(directory: str | os.PathLike | None = None) -> KeyStore:
    """The process-wide `KeyStore` for a directory (default: `default_keys_dir()`, read each call)."""
    path = Path(directory).expanduser() if directory else default_keys_dir()
    key = str(path.absolute())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = KeyStore(path)
        return store


def rotate_keys(keys_dir: str | os.PathLike | None = None) -> str:
    """Make a new active signing key (old public keys stay valid for `MAX_TTL_S`); returns its kid."""
    return get_keystore(keys_dir).rotate()


def jwks(keys_dir: str | os.PathLike | None = None) -> dict:
    """The JWKS document (`{"keys": [...]}`) of every valid public key, generating the first key."""
    store = get_keystore(keys_dir)
    store.ensure_active()
    return store.jwks()
