"""Pinned real-world corpora for the retrieval evaluation and the index benchmark.

Each corpus is an exact release of an open-source package, downloaded at run time (never
vendored into this repository), unpacked under ``benchmarks/.cache/corpora/`` and turned into
a git repository with one commit, so that commit-based refresh can be measured against it.
Python corpora are sdists from PyPI (``pip download``); the TypeScript corpus is an npm
tarball (``npm pack``); the Go and Rust corpora are the source trees that Debian's
``golang-*-dev`` / ``librust-*-dev`` binary packages ship under ``/usr/share/gocode`` and
``/usr/share/cargo/registry`` (``apt-get download PKG=VERSION`` + ``dpkg-deb -x``: nothing is
installed, no deb-src entry is needed).

    python benchmarks/corpora.py                 # fetch every corpus
    python benchmarks/corpora.py requests flask  # fetch some
    python benchmarks/corpora.py --list

``fetch(name)`` returns the unpacked root.  The root is the sdist's top directory
(``requests-2.32.3/``), the npm tarball's ``package/``, or the Debian package's source
directory (``usr/share/gocode/src/github.com/spf13/cobra``), so gold paths in
``eval/questions.json`` look like ``src/requests/cookies.py``, ``src/core/reaction.ts`` or
``command.go``.
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
    registry: str  # "pypi", "npm" or "deb"
    package: str
    version: str
    purpose: str  # "eval" | "bench" | "notebooks" | "extra"
    note: str = ""
    lang: str = "python"  # the corpus's main language (questions carry their own `lang`)
    subdir: str = ""  # deb: the source tree inside the package, e.g. usr/share/gocode/src/...

    @property
    def pin(self) -> str:
        if self.registry == "pypi":
            return f"{self.package}=={self.version}"
        if self.registry == "deb":
            return f"{self.package}={self.version}"  # apt-get's NAME=VERSION
        return f"{self.package}@{self.version}"

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
        Corpus("mobx", "npm", "mobx", "6.13.5", "eval",
               "reactive state library: TypeScript sources in src/ (dist/ is build output)", lang="typescript"),
        Corpus("cobra", "deb", "golang-github-spf13-cobra-dev", "1.6.1-1", "eval",
               "Go CLI framework (spf13/cobra 1.6.1)", lang="go",
               subdir="usr/share/gocode/src/github.com/spf13/cobra"),
        Corpus("logrus", "deb", "golang-github-sirupsen-logrus-dev", "1.9.0-1", "eval",
               "Go structured logger (sirupsen/logrus 1.9.0)", lang="go",
               subdir="usr/share/gocode/src/github.com/sirupsen/logrus"),
        Corpus("serde_json", "deb", "librust-serde-json-dev", "1.0.87-1", "eval",
               "Rust JSON library (the serde_json 1.0.87 crate)", lang="rust",
               subdir="usr/share/cargo/registry/serde_json-1.0.87"),
        Corpus("django", "pypi", "django", "5.1.4", "bench", "large: >100k lines of Python"),
        Corpus("pytest", "pypi", "pytest", "8.3.4", "bench", "mid-size: ~100k lines of Python (the CLI latency goal's size)"),
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


def _download_deb(corpus: Corpus, dest: Path) -> Path:
    """``apt-get download`` one exact version of a Debian binary package (nothing is installed)."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in dest.glob(f"{corpus.package}_*.deb"):
        if p.name.startswith(f"{corpus.package}_{corpus.version.split(':')[-1]}_"):
            return p
    apt = shutil.which("apt-get")
    if not apt:
        raise RuntimeError(f"apt-get is not available; cannot fetch {corpus.pin}")
    try:
        _run([apt, "download", "-q", corpus.pin], cwd=dest)
    except RuntimeError as e:
        raise RuntimeError(f"{e}\n(is the package list current? `apt-get update` once; "
                           f"Debian's {corpus.pin} must still be in the archive)") from None
    found = sorted(dest.glob(f"{corpus.package}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {corpus.pin} produced no .deb in {dest}")
    return found[-1]


def _unpack_deb(archive: Path, into: Path, subdir: str) -> Path:
    """Extract a .deb with ``dpkg-deb -x`` and return its source directory `subdir`."""
    into.mkdir(parents=True, exist_ok=True)
    dpkg = shutil.which("dpkg-deb")
    if not dpkg:
        raise RuntimeError("dpkg-deb is not available; cannot unpack Debian packages")
    _run([dpkg, "-x", str(archive), str(into)])
    top = into / subdir
    if not top.is_dir():
        raise RuntimeError(f"{archive.name} has no {subdir}/")
    # Debian ships some sources as symlinks into other packages; never follow them out.
    for p in sorted(top.rglob("*"), reverse=True):
        if p.is_symlink():
            p.unlink()
    return top


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
    download = {"npm": _download_npm, "deb": _download_deb}.get(corpus.registry, _download_pypi)
    archive = download(corpus, dl_dir)

    CORPORA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{corpus.name}-", dir=CORPORA_DIR))
    try:
        top = _unpack_deb(archive, tmp, corpus.subdir) if corpus.registry == "deb" else _unpack(archive, tmp)
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


LANG_SUFFIX = {"python": ".py", "typescript": ".ts", "go": ".go", "rust": ".rs"}


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
            comment = "#" if suf == ".py" else "//"
            n_code += sum(1 for ln in lines if ln.strip() and not ln.lstrip().startswith(comment))
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
    ap.add_argument("--count", action="store_true", help="also count lines of the corpus's language")
    args = ap.parse_args(argv)
    if args.list:
        for c in CORPORA.values():
            print(f"{c.name:10s} {c.pin:42s} {c.purpose:9s} {c.lang:10s} {c.note}")
        return 0
    for name in args.names or list(CORPORA):
        root = fetch(name, refresh=args.refresh)
        line = f"{name:10s} {root}"
        if args.count:
            suf = LANG_SUFFIX.get(CORPORA[name].lang, ".py")
            n = count_lines(root, (suf,))
            line += (f"  ({n[f'{suf}_files']} {suf} files, {n[f'{suf}_lines']} lines, "
                     f"{n[f'{suf}_code_lines']} code lines)")
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
