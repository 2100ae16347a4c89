"""Pinned real-world corpora for the retrieval evaluation and the index benchmark.

Each corpus is an exact release of an open-source package, downloaded from PyPI at run
time (never vendored into this repository), unpacked under ``benchmarks/.cache/corpora/``
and turned into a git repository with one commit, so that commit-based refresh can be
measured against it.

    python benchmarks/corpora.py                 # fetch every corpus
    python benchmarks/corpora.py requests flask  # fetch some
    python benchmarks/corpora.py --list

``fetch(name)`` returns the unpacked root.  The root is the sdist's top directory
(``requests-2.32.3/``), so gold paths in ``eval/questions.json`` look like
``src/requests/cookies.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = Path(os.environ.get("DIRENG_BENCH_CACHE", BENCH_DIR / ".cache"))
CORPORA_DIR = CACHE_DIR / "corpora"
DOWNLOAD_DIR = CACHE_DIR / "downloads"

GIT_IDENTITY = ["-c", "user.name=direng-bench", "-c", "user.email=bench@direng.invalid",
                "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


@dataclass(frozen=True)
class Corpus:
    name: str
    registry: str  # "pypi" or "npm"
    package: str
    version: str
    purpose: str  # "eval" | "bench" | "notebooks" | "extra"
    note: str = ""

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}" if self.registry == "pypi" else f"{self.package}@{self.version}"

    @property
    def root(self) -> Path:
        return CORPORA_DIR / f"{self.name}-{self.version}"

    @property
    def ready_marker(self) -> Path:
        # Kept outside the root so the indexer never sees it.
        return CORPORA_DIR / f"{self.name}-{self.version}.ready"


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in [
        Corpus("requests", "pypi", "requests", "2.32.3", "eval", "HTTP client, src/ layout"),
        Corpus("click", "pypi", "click", "8.1.7", "eval", "CLI framework, src/ layout"),
        Corpus("flask", "pypi", "flask", "3.0.3", "eval", "web micro-framework, src/ layout"),
        Corpus("attrs", "pypi", "attrs", "23.2.0", "eval", "class-boilerplate library, src/ layout"),
        Corpus("django", "pypi", "django", "5.1.4", "bench", "large: >100k lines of Python"),
        Corpus("control", "pypi", "control", "0.10.1", "notebooks",
               "python-control: 38 example notebooks that call the package (11 copied under doc/)"),
    ]
}

EVAL_CORPORA = [c.name for c in CORPORA.values() if c.purpose == "eval"]
BENCH_CORPUS = "django"
NOTEBOOK_CORPUS = "control"  # notebook_eval.py: work that lives in notebooks


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc


def _download_pypi(corpus: Corpus, dest: Path) -> Path:
    """Download the sdist (or, failing that, the wheel) of a pinned PyPI release."""
    dest.mkdir(parents=True, exist_ok=True)
    existing = _find_archive(corpus, dest)
    if existing:
        return existing
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            corpus.pin, "-d", str(dest)]
    try:
        _run(base[:5] + ["--no-binary", ":all:"] + base[5:])
    except RuntimeError as sdist_err:
        print(f"[corpora] no sdist for {corpus.pin} ({str(sdist_err).splitlines()[0]}); trying the wheel",
              file=sys.stderr)
        _run(base[:5] + ["--only-binary", ":all:"] + base[5:])
    found = _find_archive(corpus, dest)
    if not found:
        raise RuntimeError(f"pip download of {corpus.pin} produced no archive in {dest}")
    return found


def _find_archive(corpus: Corpus, dest: Path) -> Path | None:
    if not dest.exists():
        return None
    stems = {corpus.package.lower().replace("-", "_"), corpus.package.lower()}
    candidates = []
    for p in dest.iterdir():
        low = p.name.lower()
        if not any(low.startswith(f"{s}-{corpus.version}") for s in stems):
            continue
        if low.endswith((".tar.gz", ".tgz", ".zip", ".whl", ".tar.bz2")):
            candidates.append(p)
    # Prefer an sdist over a wheel.
    candidates.sort(key=lambda p: p.name.endswith(".whl"))
    return candidates[0] if candidates else None


def _download_npm(corpus: Corpus, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for p in dest.glob("*.tgz"):
        if p.name.endswith(f"-{corpus.version}.tgz"):
            return p
    npm = shutil.which("npm")
    if not npm:
        raise RuntimeError("npm is not installed; cannot fetch npm corpora")
    out = _run([npm, "pack", corpus.pin, "--silent"], cwd=dest).stdout.strip().splitlines()
    return dest / out[-1].strip()


def _safe_members(tar: tarfile.TarFile, target: Path):
    target = target.resolve()
    for m in tar.getmembers():
        p = (target / m.name).resolve()
        if not str(p).startswith(str(target)) or m.issym() or m.islnk() or m.isdev():
            continue
        yield m


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack an archive into `into` and return the directory holding the package root."""
    into.mkdir(parents=True, exist_ok=True)
    name = archive.name
    if name.endswith((".tar.gz", ".tgz", ".tar.bz2")):
        with tarfile.open(archive) as tar:
            members = list(_safe_members(tar, into))
            for m in members:
                # Running as root, tarfile would restore the archive's uid/gid, and git then
                # refuses the repository ("dubious ownership"); own everything ourselves.
                m.uid, m.gid, m.uname, m.gname = os.getuid(), os.getgid(), "", ""
            if hasattr(tarfile, "data_filter"):  # 3.12+, and 3.11.4+: silence the default-filter warning
                tar.extractall(into, members=members, filter="fully_trusted")
            else:
                tar.extractall(into, members=members)
    elif name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                p = (into / info.filename).resolve()
                if str(p).startswith(str(into.resolve())):
                    zf.extract(info, into)
    else:
        raise RuntimeError(f"unknown archive type: {archive}")
    entries = [p for p in into.iterdir()]
    # sdists and npm tarballs have exactly one top directory; wheels do not.
    if len(entries) == 1 and entries[0].is_dir() and not name.endswith(".whl"):
        return entries[0]
    return into


def _git_init(root: Path, message: str) -> None:
    if (root / ".git").exists():
        shutil.rmtree(root / ".git")
    _run(["git", *GIT_IDENTITY, "init", "-q"], cwd=root)
    _run(["git", *GIT_IDENTITY, "add", "-A", "-f", "."], cwd=root)
    _run(["git", *GIT_IDENTITY, "commit", "-q", "--no-verify", "-m", message], cwd=root)


def git(root: Path, *args: str, timeout: float = 300) -> str:
    """Run a git command inside a corpus with the benchmark identity; return stdout."""
    return _run(["git", *GIT_IDENTITY, *args], cwd=root, timeout=timeout).stdout


def head_commit(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def fetch(name: str, *, refresh: bool = False) -> Path:
    """Return the unpacked, git-committed root of the named corpus, downloading it if needed."""
    try:
        corpus = CORPORA[name]
    except KeyError:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}") from None
    root = corpus.root
    if refresh and root.exists():
        shutil.rmtree(root)
        corpus.ready_marker.unlink(missing_ok=True)
    if corpus.ready_marker.exists() and (root / ".git").exists():
        return root

    dl_dir = DOWNLOAD_DIR / corpus.name
    archive = _download_npm(corpus, dl_dir) if corpus.registry == "npm" else _download_pypi(corpus, dl_dir)

    CORPORA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{corpus.name}-", dir=CORPORA_DIR))
    try:
        top = _unpack(archive, tmp)
        # Never let a corpus carry a stale index or a nested repository.
        for junk in (".direng", ".git"):
            if (top / junk).exists():
                shutil.rmtree(top / junk)
        if root.exists():
            shutil.rmtree(root)
        shutil.move(str(top), str(root))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    _git_init(root, f"{corpus.pin} ({archive.name})")
    exclude = root / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as fh:
        # The index store lives inside the root; keep it out of `git status`.
        fh.write("\n.direng/\n")
    corpus.ready_marker.write_text(f"{corpus.pin}\n{archive.name}\n{head_commit(root)}\n")
    return root


def count_lines(root: Path, suffixes: tuple[str, ...] = (".py",)) -> dict[str, int]:
    """Count files, physical lines and non-blank non-comment lines per suffix (git-tracked files only)."""
    files = git(root, "ls-files", "-z").split("\0")
    out: dict[str, int] = {}
    for suf in suffixes:
        n_files = n_lines = n_code = 0
        for rel in files:
            if not rel.endswith(suf):
                continue
            try:
                text = (root / rel).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            n_files += 1
            lines = text.splitlines()
            n_lines += len(lines)
            n_code += sum(1 for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))
        out[f"{suf}_files"] = n_files
        out[f"{suf}_lines"] = n_lines
        out[f"{suf}_code_lines"] = n_code
    out["tracked_files"] = sum(1 for f in files if f)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="corpora to fetch (default: all)")
    ap.add_argument("--list", action="store_true", help="list the pinned corpora and exit")
    ap.add_argument("--refresh", action="store_true", help="re-unpack and re-commit even if cached")
    ap.add_argument("--count", action="store_true", help="also count lines of Python")
    args = ap.parse_args(argv)
    if args.list:
        for c in CORPORA.values():
            print(f"{c.name:10s} {c.pin:22s} {c.purpose:6s} {c.note}")
        return 0
    for name in args.names or list(CORPORA):
        root = fetch(name, refresh=args.refresh)
        line = f"{name:10s} {root}"
        if args.count:
            n = count_lines(root)
            line += f"  ({n['.py_files']} .py files, {n['.py_lines']} lines, {n['.py_code_lines']} code lines)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def engine_version() -> str | None:
    """The installed direng-workbench version, recorded with every benchmark result."""
    try:
        from importlib.metadata import version

        return version("direng-workbench")
    except Exception:  # noqa: BLE001 — a result without a version is still a result
        return None
