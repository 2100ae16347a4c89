"""`direng secrets set|get|list|delete|scan`: the encrypted vault and secret detection.

`set NAME [--value V]` stores a secret; without --value it is read from stdin (one trailing
newline dropped) or, on a terminal, prompted for without echo (prefer these: --value lands
in shell history and the process list). `get NAME` prints the value (the read is audited),
`list` prints the names, `delete NAME` removes one. `scan PATH… [--json]` reports secrets
found in files, directories or notebooks — type, place and sha256 prefix, never the value —
and exits 1 when there are any. The vault lives in `$DIRENG_VAULT_DIR`, else the Jupyter data
dir's `direng/`. Errors are one line on stderr. Nothing heavy is imported until it runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import DirEngError

_SKIP_DIRS = {".git", ".hg", ".svn", ".direng", ".venv", "venv", "node_modules", "__pycache__", ".tox",
              ".mypy_cache", ".pytest_cache", ".ipynb_checkpoints"}


def add_parser(sub) -> argparse.ArgumentParser:
    """Add `secrets` (set, get, list, delete, scan) to a subparsers object."""
    p = sub.add_parser("secrets", help="manage the encrypted secrets vault; scan files for secrets")
    p.set_defaults(run=run)
    ssub = p.add_subparsers(dest="secrets_command", metavar="SUBCOMMAND")
    ssub.required = True
    s = ssub.add_parser("set", help="store a secret (value from --value, stdin, or a hidden prompt)")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--value", default=None, help="the value (visible in shell history: prefer stdin)")
    g = ssub.add_parser("get", help="print a secret's value (audited)")
    g.add_argument("name", metavar="NAME")
    ls = ssub.add_parser("list", help="list secret names")
    ls.add_argument("--json", action="store_true", help="print the names as a JSON list")
    d = ssub.add_parser("delete", help="remove a secret")
    d.add_argument("name", metavar="NAME")
    sc = ssub.add_parser("scan", help="report secrets in files, directories or notebooks (never their values)")
    sc.add_argument("paths", nargs="+", metavar="PATH")
    sc.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    return p


def _read_value(args: argparse.Namespace) -> str:
    if args.value is not None:
        return args.value
    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        import getpass

        return getpass.getpass(f"value for {args.name}: ")
    data = stdin.read() if stdin is not None else ""
    if data.endswith("\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith("\n") else data


def _files(paths: list[str]):
    from pathlib import Path

    from ..security.secrets import ScanError

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not any(part in _SKIP_DIRS for part in f.relative_to(p).parts):
                    yield f
        elif p.exists():
            yield p
        else:
            raise ScanError(f"no such file or directory: {raw}")


def run(args: argparse.Namespace) -> int:
    """Run the parsed `secrets` command; returns the exit code."""

    command = getattr(args, "secrets_command", None)
    if command not in ("set", "get", "list", "delete", "scan"):
        print("direng: error: secrets: choose a subcommand: set, get, list, delete, scan", file=sys.stderr)
        return 2
    try:
        if command == "scan":
            return _scan(args)
        from ..security.vault import Vault

        vault = Vault()
        if command == "set":
            value = _read_value(args)
            vault.set(args.name, value, actor="cli")
            print(f"ok: stored secret {args.name}", file=sys.stderr)
        elif command == "get":
            sys.stdout.write(vault.get(args.name, actor="cli") + "\n")
        elif command == "list":
            names = vault.list()
            if getattr(args, "json", False):
                sys.stdout.write(json.dumps(names) + "\n")
            else:
                sys.stdout.write("".join(f"{n}\n" for n in names))
        else:
            vault.delete(args.name, actor="cli")
            print(f"ok: deleted secret {args.name}", file=sys.stderr)
        return 0
    except DirEngError as err:
        print(f"direng: error: {err}", file=sys.stderr)
        return err.exit_code


def _scan(args: argparse.Namespace) -> int:
    from ..security.secrets import scan_file

    findings = [f for path in _files(args.paths) for f in scan_file(path)]
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps([f.to_dict() for f in findings], indent=2) + "\n")
    else:
        for f in findings:
            sys.stdout.write(f"{f}\n")
        if not findings:
            sys.stdout.write("ok: no secrets found\n")
    return 1 if findings else 0
