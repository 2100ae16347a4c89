"""`direng token mint|inspect` and `direng keys rotate|jwks`: DirEng API tokens from the shell.

    direng token mint --scope index:read --scope tasks:read [--ttl 3600] [--subject alice]
        prints the token as the LAST line of stdout (a one-line summary goes to stderr), so
        `TOKEN=$(direng token mint --scope lane | tail -1)` works. `--scope` is repeatable and
        also takes space/comma-separated lists and the presets `kernel`, `lane` and `all`.
    direng token inspect TOKEN|-
        prints {"header", "claims", "valid", "reason"} as JSON (claims as written, checked or
        not); exit 0 when the token verifies against this machine's keys, 1 when it does not.
    direng keys rotate     new active signing key; tokens signed by the old one stay valid
                           until they expire (the old public key is kept MAX_TTL_S)
    direng keys jwks       the public keys as a JWKS document

Every command takes `--keys-dir` (default `$DIRENG_KEYS_DIR`, else
`JUPYTER_DATA_DIR/direng/keys`: the same keys the local Jupyter server uses). Nothing heavy is
imported until a command runs (PyJWT and cryptography load on use).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..errors import DirEngError


def _add_keys_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys-dir", default=None, metavar="DIR",
                   help="signing keys directory (default: $DIRENG_KEYS_DIR, else JUPYTER_DATA_DIR/direng/keys)")


def add_parser(sub) -> argparse.ArgumentParser:
    """Add `token` (mint, inspect) and `keys` (rotate, jwks) to a subparsers object; returns `token`."""
    p = sub.add_parser("token", help="mint and inspect DirEng API tokens (RS256 JWTs with scopes)")
    p.set_defaults(run=run)
    tsub = p.add_subparsers(dest="token_command", metavar="SUBCOMMAND")
    tsub.required = True
    m = tsub.add_parser("mint", help="mint a token; prints it as the last line")
    m.add_argument("--scope", action="append", default=[], required=True, metavar="SCOPE",
                   help="a scope to grant (repeatable; space/comma lists and the presets kernel, lane, all work)")
    m.add_argument("--ttl", type=int, default=86400, metavar="SECONDS", help="lifetime in seconds (default 86400)")
    m.add_argument("--subject", default=None, metavar="USER", help="the token's user (default: the OS user)")
    _add_keys_dir(m)
    i = tsub.add_parser("inspect", help="show a token's header and claims and whether it verifies")
    i.add_argument("token", metavar="TOKEN", help="the token ('-' reads it from stdin)")
    i.add_argument("--scope", default=None, metavar="SCOPE", help="also require this scope")
    i.add_argument("--user", default=None, metavar="USER", help="also require this subject")
    _add_keys_dir(i)

    k = sub.add_parser("keys", help="manage the keys that sign DirEng tokens")

    k.set_defaults(run=run)
    ksub = k.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    ksub.required = True
    r = ksub.add_parser("rotate", help="make a new signing key (old tokens stay valid until they expire)")
    _add_keys_dir(r)
    j = ksub.add_parser("jwks", help="print the public keys (JWKS)")
    _add_keys_dir(j)
    return p


def _iso(ts) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(ts)))
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)


def _mint(args) -> int:
    from ..security.scopes import expand_presets
    from ..security.tokens import current_username, mint, verify

    scopes = expand_presets(args.scope)
    subject = args.subject or current_username()
    token = mint(subject, list(scopes), ttl_s=args.ttl, keys_dir=args.keys_dir)
    claims = verify(token, keys_dir=args.keys_dir)
    print(f"minted a token for {subject!r} with scopes {' '.join(scopes) or '(none)'}; expires "
          f"{_iso(claims.expires_at)} (kid {claims.kid})", file=sys.stderr)
    sys.stdout.write(token + "\n")
    return 0


def _inspect(args) -> int:
    from ..security.tokens import InsufficientScope, InvalidToken, decode_unverified, verify

    token = sys.stdin.read() if args.token == "-" else args.token
    token = token.strip()
    header, claims = decode_unverified(token)
    report: dict = {"header": header, "claims": claims}
    times = {name: _iso(claims[name]) for name in ("iat", "nbf", "exp")
             if claims and isinstance(claims.get(name), (int, float)) and not isinstance(claims.get(name), bool)}
    if times:
        report["times"] = times
    report.update(valid=False, reason=None)
    try:
        verify(token, required_scope=args.scope, user=args.user, keys_dir=args.keys_dir)
    except (InvalidToken, InsufficientScope) as exc:
        report["reason"] = str(exc)
    else:
        report["valid"] = True
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0 if report["valid"] else 1


def _keys(args) -> int:
    from ..security.keys import get_keystore, jwks

    if args.keys_command == "rotate":
        store = get_keystore(args.keys_dir)
        old = store.active_kid
        kid = store.rotate()
        print(f"new signing key {kid} in {store.directory}" + (f"; {old} stays valid for tokens it signed "
              f"until they expire" if old else ""), file=sys.stderr)
        sys.stdout.write(kid + "\n")
        return 0
    sys.stdout.write(json.dumps(jwks(args.keys_dir), indent=2) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a parsed `token` or `keys` command; returns the exit code. Errors are one line on stderr."""

    try:
        if args.command == "keys":
            return _keys(args)
        if getattr(args, "token_command", None) == "mint":
            return _mint(args)
        if getattr(args, "token_command", None) == "inspect":
            return _inspect(args)
    except DirEngError as err:
        print(f"direng: error: {err}", file=sys.stderr)
        return err.exit_code
    print("direng: error: token: choose a subcommand: mint, inspect", file=sys.stderr)
    return 2
