"""Shared fixtures: real git repositories, a real index store, the real embedding models.

The MiniLM model is loaded once per test session (the `indexed_sample` fixture embeds the
sample repository with it); CLI tests run the real `direng` entry point in subprocesses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# Signing keys, the vault and the audit log live in the user's Jupyter data dir; tests use their own.
import tempfile as _tempfile  # noqa: E402

_SECURITY_DIR = _tempfile.mkdtemp(prefix="direng-test-security-")
os.environ.setdefault("DIRENG_KEYS_DIR", os.path.join(_SECURITY_DIR, "keys"))
os.environ.setdefault("DIRENG_VAULT_DIR", os.path.join(_SECURITY_DIR, "vault"))
os.environ.setdefault("DIRENG_AUDIT_LOG", os.path.join(_SECURITY_DIR, "audit.jsonl"))

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "sample_repo"


def git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=Test", "-c", "user.email=test@example.com",
         "-c", "commit.gpgsign=false", *args],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def make_repo(dest: Path, source: Path = SAMPLE, commit: bool = True) -> Path:
    shutil.copytree(source, dest)
    if commit:
        git(dest, "init", "-q", "-b", "main")
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "-m", "initial")
    return dest


def commit_all(root: Path, message: str = "change") -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "direng_kernel.cli.main", *args],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh git copy of the sample repository (not indexed)."""
    return make_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def indexed_sample(tmp_path_factory):
    """The sample repository indexed once per session, MiniLM vectors included (read-only use)."""
    from direng_kernel.workbench import Workbench

    root = make_repo(tmp_path_factory.mktemp("sample") / "repo")
    wb = Workbench(root)
    wb.index(dense=True)
    yield wb
    wb.close()
