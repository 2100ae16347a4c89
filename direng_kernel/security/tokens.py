"""DirEng API tokens: RS256 JWTs minted and verified with the keys of `keys.py`.

    token = mint("alice", ["index:read", "tasks:read"], ttl_s=3600)
    claims = verify(token, required_scope="index:read", user="alice")

A token's header names its key (`kid`); its claims are `iss` ("direng-workbench"), `aud`
("direng"), `sub` (the user), `iat`, `nbf`, `exp`, `jti` (random) and `scope` (space-separated
DirEng scopes), plus any `extra` claims. Verification accepts RS256 only (no `none`, no HMAC:
an HS256 token "signed" with the public key is rejected before any key is used), picks the
public key by `kid`, checks issuer, audience, expiry and not-before with 30 s leeway, the
lifetime (at most `MAX_TTL_S`), and the subject when `user` is given. Every failure is
`InvalidToken` (HTTP 401) with one reason; a valid token without the needed scope is
`InsufficientScope` (HTTP 403). PyJWT is imported on first use. The first use of a token signed
by a retired key (after `direng keys rotate`) is audited once per token (`token.retired_key_use`).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import DirEngError
from . import audit
from .keys import ALGORITHM, LEEWAY_S, MAX_TTL_S, get_keystore
from .scopes import KERNEL_SCOPES, LANE_SCOPES, format_scopes, parse_scopes, validate_scope, validate_scopes

ISSUER = "direng-workbench"
AUDIENCE = "direng"
DEFAULT_TTL_S = 24 * 3600
KERNEL_TTL_S = 12 * 3600
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"})
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope")

log = logging.getLogger(__name__)

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class TokenError(DirEngError):
    """A token could not be minted or used."""


class InvalidToken(TokenError):
    """The token is malformed, forged, expired, not yet valid, or not for this audience/user (401).

    `reason` is the one-line explanation; `code` one of a few fixed words (`malformed`,
    `bad_signature`, `expired`, ...), safe to log and to count by: it never echoes the token."""

    def __init__(self, reason: str, code: str = "malformed"):
        self.reason = reason
        self.code = code
        super().__init__(f"invalid token: {reason}")


class InsufficientScope(TokenError):
    """The token is valid but lacks the scope the operation needs (403)."""

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__(f"missing scope {scope!r}")


@dataclass(frozen=True)
class Claims:
    """A verified token's claims."""

    subject: str
    scopes: tuple[str, ...]
    issuer: str
    audience: str | tuple[str, ...]
    issued_at: int
    not_before: int
    expires_at: int
    jti: str
    kid: str
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> "Claims":
        """`self`, or `InsufficientScope(scope)`."""
        if validate_scope(scope) not in self.scopes:
            raise InsufficientScope(scope)
        return self

    @property
    def ttl_left(self) -> float:
        return self.expires_at - time.time()


def current_username() -> str:
    """The OS user running this process (the subject of kernel tokens)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 — no passwd entry (containers) and no USER/LOGNAME
        return str(os.getuid()) if hasattr(os, "getuid") else "user"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def looks_like_jwt(value: Any) -> bool:
    """Three base64url parts whose first decodes to a JSON object with an `alg`: a JWT, not a
    Jupyter token (those are hex, or whatever the user set, but never that)."""
    if not isinstance(value, str) or len(value) > 16384 or not _JWT_SHAPE.fullmatch(value):
        return False
    try:
        header = json.loads(_b64decode(value.split(".", 1)[0]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


def decode_unverified(token: str) -> tuple[dict | None, dict | None]:
    """(header, claims) as written in the token, without any check (None where unreadable)."""
    parts = token.strip().split(".") if isinstance(token, str) else []
    out: list[dict | None] = [None, None]
    for i in range(min(2, len(parts) if len(parts) == 3 else 0)):
        try:
            value = json.loads(_b64decode(parts[i]))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        out[i] = value if isinstance(value, dict) else None
    return out[0], out[1]


def mint(subject: str, scopes: Iterable[str], ttl_s: int = DEFAULT_TTL_S, audience: str = AUDIENCE,
         issuer: str = ISSUER, extra: dict | None = None, *, keys_dir=None, now: float | None = None) -> str:
    """A signed RS256 JWT for `subject` with `scopes`, valid for `ttl_s` seconds from `now`."""
    import jwt

    if not isinstance(subject, str) or not subject.strip():
        raise TokenError("a token needs a non-empty subject (user name)")
    if isinstance(scopes, str):
        scopes = [scopes]
    names = validate_scopes(scopes)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 0 < ttl_s <= MAX_TTL_S:
        raise TokenError(f"ttl must be a whole number of seconds between 1 and {MAX_TTL_S}, got {ttl_s!r}")
    for name, value in (("audience", audience), ("issuer", issuer)):
        if not isinstance(value, str) or not value:
            raise TokenError(f"{name} must be a non-empty string")
    extra = dict(extra or {})
    reserved = sorted(RESERVED_CLAIMS & set(extra))
    if reserved:
        raise TokenError(f"extra claims may not set the reserved claim(s) {', '.join(reserved)}")
    signing = get_keystore(keys_dir).signing_key()
    iat = int(time.time() if now is None else now)
    payload = {**extra, "iss": issuer, "sub": subject, "aud": audience, "iat": iat, "nbf": iat,
               "exp": iat + ttl_s, "jti": secrets.token_urlsafe(16), "scope": format_scopes(names)}
    token = jwt.encode(payload, signing.private_key, algorithm=ALGORITHM, headers={"kid": signing.kid, "typ": "JWT"})
    audit.record("token.issue", actor=subject, scopes=sorted(payload.get("scope", "").split()),
                 jti=payload.get("jti"), exp=payload.get("exp"), kid=signing.kid)
    return token


def verify(token: str, required_scope: str | None = None, audience: str = AUDIENCE, user: str | None = None, *,
           issuer: str = ISSUER, keys_dir=None) -> Claims:
    """The token's claims if it is a valid DirEng token (for `user`, when given) that carries
    `required_scope` (when given); else `InvalidToken(reason)` or `InsufficientScope(scope)`."""
    if required_scope is not None:
        validate_scope(required_scope)
    claims = _verify(token, audience, issuer, keys_dir)
    if user is not None and claims.subject != user:
        raise InvalidToken(f"the token is for user {claims.subject!r}, not {user!r}", "wrong_user")
    _audit_retired_key_use(claims, keys_dir)
    if required_scope is not None and required_scope not in claims.scopes:
        raise InsufficientScope(required_scope)
    return claims


def _verify(token: Any, audience: str, issuer: str, keys_dir) -> Claims:
    import jwt

    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidToken("not a JWT (non-ASCII bytes)", "not_a_jwt") from None
    if not isinstance(token, str):
        raise InvalidToken(f"not a JWT (got {type(token).__name__})", "not_a_jwt")
    token = token.strip()
    if not _JWT_SHAPE.fullmatch(token) or len(token) > 16384:
        raise InvalidToken("not a JWT (expected three base64url parts separated by dots)", "not_a_jwt")
    header, _ = decode_unverified(token)
    if header is None:
        raise InvalidToken("malformed header (not a base64url JSON object)")
    alg = header.get("alg")
    if alg != ALGORITHM:  # before any key is touched: no `none`, no HS256 keyed with the public key
        raise InvalidToken(f"algorithm {alg!r} is not accepted (only {ALGORITHM})", "algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("no key id ('kid') in the header", "no_kid")
    store = get_keystore(keys_dir)
    key = store.public_key(kid)
    if key is None:
        raise InvalidToken(f"unknown key id {kid[:64]!r} (not issued by this server, or its key was pruned)",
                           "unknown_kid")
    try:
        payload = jwt.decode(token, key, algorithms=[ALGORITHM], audience=audience, issuer=issuer, leeway=LEEWAY_S,
                             options={"require": list(REQUIRED_CLAIMS), "verify_signature": True})
    except jwt.ExpiredSignatureError:
        raise InvalidToken("expired", "expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("not yet valid (nbf/iat in the future)", "not_yet_valid") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken(f"wrong audience (expected {audience!r})", "wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken(f"wrong issuer (expected {issuer!r})", "wrong_issuer") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("bad signature", "bad_signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"missing claim {exc.claim!r}", "missing_claim") from None
    except jwt.InvalidAlgorithmError:
        raise InvalidToken(f"algorithm is not accepted (only {ALGORITHM})", "algorithm") from None
    except jwt.PyJWTError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise InvalidToken(f"malformed token ({first})" if first else "malformed token") from None
    except Exception as exc:  # noqa: BLE001 — garbage must be a 401, never a 500
        raise InvalidToken(f"malformed token ({type(exc).__name__})") from None
    return _claims(payload, kid, store)


def _claims(payload: dict, kid: str, store) -> Claims:
    sub, scope, jti = payload.get("sub"), payload.get("scope"), payload.get("jti")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("'sub' must be a non-empty string", "bad_claims")
    if not isinstance(scope, str):
        raise InvalidToken("'scope' must be a space-separated string", "bad_claims")
    if not isinstance(jti, str) or not jti:
        raise InvalidToken("'jti' must be a non-empty string", "bad_claims")
    times = {}
    for name in ("iat", "nbf", "exp"):
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidToken(f"{name!r} must be a number", "bad_claims")
        times[name] = int(value)
    if times["exp"] - times["iat"] > MAX_TTL_S + LEEWAY_S:
        raise InvalidToken(f"lifetime exceeds the maximum of {MAX_TTL_S} s", "lifetime")
    info = store.key_info(kid)
    if info is not None and info.retired is not None and times["iat"] > info.retired + LEEWAY_S:
        raise InvalidToken("signed with a retired key after its retirement", "retired_key")
    aud = payload.get("aud")
    return Claims(subject=sub, scopes=parse_scopes(scope, strict=False), issuer=payload.get("iss"),
                  audience=tuple(aud) if isinstance(aud, list) else aud, issued_at=times["iat"],
                  not_before=times["nbf"], expires_at=times["exp"], jti=jti, kid=kid, raw=dict(payload))


# jti → exp of the tokens of retired keys already audited by this process (verified tokens only:
# nobody without a signing key can add entries, so expiry pruning keeps it small)
_retired_seen: dict[str, int] = {}
_retired_lock = threading.Lock()


def _audit_retired_key_use(claims: Claims, keys_dir) -> None:
    """The first use of a token signed by a retired (rotated-out) key is audited, once per token:
    after a rotation, the log shows who still holds old tokens. Called with verified claims only,
    so its jti, kid and subject are facts, not claims. A log that cannot be written does not turn
    a valid token away (it is logged, and the next use tries again)."""
    info = get_keystore(keys_dir).key_info(claims.kid)
    if info is None or info.retired is None:
        return
    now = time.time()
    with _retired_lock:
        if claims.jti in _retired_seen:
            return
        if len(_retired_seen) > 4096:
            for jti in [j for j, exp in _retired_seen.items() if exp < now]:
                del _retired_seen[jti]
        _retired_seen[claims.jti] = claims.expires_at
    try:
        audit.record("token.retired_key_use", actor=claims.subject, jti=claims.jti, kid=claims.kid,
                     retired_at=int(info.retired), active_kid=get_keystore(keys_dir).active_kid,
                     exp=claims.expires_at)
    except audit.AuditError as exc:
        with _retired_lock:
            _retired_seen.pop(claims.jti, None)
        log.warning("DirEng: cannot audit the use of a token signed by retired key %s: %s", claims.kid, exc)


def mint_kernel_token(subject: str | None = None, ttl_s: int = KERNEL_TTL_S, *, keys_dir=None) -> str:
    """A notebook kernel's token: `KERNEL_SCOPES` for the OS user, short-lived."""
    return mint(subject or current_username(), KERNEL_SCOPES, ttl_s=ttl_s, keys_dir=keys_dir,
                extra={"token_use": "kernel"})


def mint_lane_token(subject: str | None = None, ttl_s: int = DEFAULT_TTL_S, *, keys_dir=None) -> str:
    """A delegated lane's token: `LANE_SCOPES` (read-only) for the OS user."""
    return mint(subject or current_username(), LANE_SCOPES, ttl_s=ttl_s, keys_dir=keys_dir,
                extra={"token_use": "lane"})
