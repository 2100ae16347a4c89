"""Install the `direng` kernelspec into another environment (the wheel already ships one)."""

from __future__ import annotations

import argparse
from importlib.resources import files


def kernelspec_dir() -> str:
    return str(files("direng_kernel.kernel") / "kernelspec")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m direng_kernel.kernel install")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix (e.g. a venv)")
    where.add_argument("--prefix", help="install under this prefix")
    args = parser.parse_args(argv)
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    prefix = sys.prefix if args.sys_prefix else args.prefix
    dest = KernelSpecManager().install_kernel_spec(kernelspec_dir(), "direng", user=args.user, prefix=prefix)
    print(f"installed kernelspec direng in {dest}")
    return 0
