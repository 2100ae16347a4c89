"""Shared fixtures: real git repositories, a real index store, the real embedding models.

The MiniLM model is loaded once per test session (the `indexed_sample` fixture embeds the
sample repository with it); CLI tests run the real `direng` entry point in subprocesses.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

# Isolation: no DIRENG_* setting of the developer's reaches the tests (a store, a server, a policy,
# a sandbox mode, ...), except the switch that makes bubblewrap mandatory. Per-user state — signing
# keys, the vault, the audit log, the model cache — is forced into this session's temp dir, so no
# test ever writes into the developer's real keys or vault.
import tempfile as _tempfile  # noqa: E402

REQUIRE_BWRAP_ENV = "DIRENG_REQUIRE_BWRAP"
_SESSION_ENV = "_DIRENG_TEST_SESSION_DIR"  # set once per session (this module may be imported twice)
_ISOLATED = {"DIRENG_KEYS_DIR", "DIRENG_VAULT_DIR", "DIRENG_AUDIT_LOG", "DIRENG_CACHE_DIR"}
_SECURITY_DIR = os.environ.get(_SESSION_ENV, "")
_USER_CACHE = None if _SECURITY_DIR else os.environ.get("DIRENG_CACHE_DIR")  # the model to copy
for _name in [n for n in os.environ if n.startswith("DIRENG_") and n != REQUIRE_BWRAP_ENV
              and not (_SECURITY_DIR and n in _ISOLATED)]:
    del os.environ[_name]
if not _SECURITY_DIR or not os.path.isdir(_SECURITY_DIR):
    _SECURITY_DIR = _tempfile.mkdtemp(prefix="direng-test-security-")
    os.environ[_SESSION_ENV] = _SECURITY_DIR
    atexit.register(shutil.rmtree, _SECURITY_DIR, ignore_errors=True)
# Under pytest-xdist each worker has keys, vault and audit log of its own (tests read back what they
# audited, and two workers must not create one key pair at once); the model cache is shared, read only.
_WORKER_DIR = os.path.join(_SECURITY_DIR, os.environ.get("PYTEST_XDIST_WORKER", "main"))
os.environ["DIRENG_KEYS_DIR"] = os.path.join(_WORKER_DIR, "keys")
os.environ["DIRENG_VAULT_DIR"] = os.path.join(_WORKER_DIR, "vault")
os.environ["DIRENG_AUDIT_LOG"] = os.path.join(_WORKER_DIR, "audit.jsonl")
# Serving executors keep a warm lane runner per lane (the kernel pool): a kernel booting after every
# run of every short-lived test server is CPU this 2-core suite cannot spare. tests/test_kernel_pool.py
# turns it on and tests it.
os.environ["DIRENG_KERNEL_POOL"] = "0"


def _isolated_model_cache() -> Path:
    """A temp DIRENG_CACHE_DIR holding the static model: a copy of the one already distilled in the
    user's cache (read only), else distilled once, here, for this session (~25 s)."""
    from direng_kernel.config import user_cache_dir
    from direng_kernel.index import embed

    cache = Path(_SECURITY_DIR) / "cache"
    os.environ.pop("DIRENG_CACHE_DIR", None)
    if _USER_CACHE is not None:
        os.environ["DIRENG_CACHE_DIR"] = _USER_CACHE
    user_model = embed._static_dir()  # in the user's cache, as the engine would find it
    user_onnx = embed._onnx_dir()  # MiniLM's ONNX export (tests/test_embed_onnx.py builds one itself)
    os.environ["DIRENG_CACHE_DIR"] = str(cache)
    assert user_cache_dir() == cache
    ours = embed._static_dir()
    import fcntl

    # xdist workers start together: one copies (or distils), the others wait for it
    with open(Path(_SECURITY_DIR) / "cache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (user_onnx / "export.json").is_file() and not (embed._onnx_dir() / "export.json").is_file():
            shutil.copytree(user_onnx, embed._onnx_dir(), dirs_exist_ok=True)  # else the first filling exports
        if (ours / "config.json").is_file():
            return cache  # this session's copy exists already
        if (user_model / "config.json").is_file() and user_model != ours:
            shutil.copytree(user_model, ours, dirs_exist_ok=True)
        else:
            embed.prepare_static()
    return cache


MODEL_CACHE = _isolated_model_cache()

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


@pytest.fixture
def test_lanes(monkeypatch):
    """The test lanes (tests/fixtures/test_lanes) first on DIRENG_LANES_PATH."""
    monkeypatch.setenv("DIRENG_LANES_PATH", str(FIXTURES / "test_lanes"))


@pytest.fixture(scope="session")
def indexed_sample(tmp_path_factory):
    """The sample repository indexed once per session, MiniLM vectors included (read-only use)."""
    from direng_kernel.workbench import Workbench

    root = make_repo(tmp_path_factory.mktemp("sample") / "repo")
    wb = Workbench(root)
    wb.index(dense=True)
    yield wb
    wb.close()


# -- bubblewrap ---------------------------------------------------------------------------------

def bwrap_required() -> bool:
    """Must bubblewrap work here? Yes in CI (`CI=true`) and with `DIRENG_REQUIRE_BWRAP=1`."""
    return os.environ.get("CI") == "true" or os.environ.get(REQUIRE_BWRAP_ENV) == "1"


def detected_sandbox():
    """What the sandbox probe finds here by itself (no `DIRENG_SANDBOX` override, a fresh probe)."""
    from direng_kernel.pas.sandbox import probe, reset_probe

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DIRENG_SANDBOX", raising=False)
        reset_probe()
        return probe()


def require_bwrap():
    """The probe's SandboxInfo when bubblewrap works here. When it does not: a test failure where
    bubblewrap is required (`bwrap_required()`), a skip elsewhere. The one place the suite decides
    whether a bubblewrap test may be skipped."""
    info = detected_sandbox()
    if info.mode != "bubblewrap":
        message = f"bubblewrap unusable here: {info.reason}"
        if bwrap_required():
            pytest.fail(f"{message} (required: CI=true or {REQUIRE_BWRAP_ENV}=1)", pytrace=False)
        pytest.skip(message)
    return info


def expected_sandbox_mode() -> str:
    """The sandbox mode lane commands run under when nothing overrides it: `bubblewrap` wherever
    bubblewrap is required (failing the test if it is unusable), else whatever works here."""
    info = detected_sandbox()
    if info.mode != "bubblewrap" and bwrap_required():
        pytest.fail(f"bubblewrap unusable here: {info.reason} (required: CI=true or {REQUIRE_BWRAP_ENV}=1)",
                    pytrace=False)
    return info.mode


@pytest.fixture
def bubblewrap(monkeypatch):
    """Run this test's lane commands under bubblewrap (`DIRENG_SANDBOX=bwrap`); see require_bwrap()."""
    info = require_bwrap()
    monkeypatch.setenv("DIRENG_SANDBOX", "bwrap")
    return info
