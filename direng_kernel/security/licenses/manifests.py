"""Licences declared in package metadata: `pyproject.toml` (`project.license` as a string,
`{text}` or `{file}`, `tool.poetry.license`, licence classifiers), `setup.cfg` (`[metadata]
license`), `package.json` (`license`, legacy `licenses`, `SEE LICENSE IN file`) and `Cargo.toml`
(`license`, with the legacy `/` meaning OR, and `license-file`). A broken file is reported as a
finding with an `error`, never raised.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path, PurePosixPath

try:
    import tomllib  # type: ignore[import-not-found]
except ImportError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[import-not-found,no-redef]
    except ImportError:
        tomllib = None  # a regex reads `license = "…"` instead

from .findings import LicenseFinding, finding
from .spdx import CLASSIFIERS, one_line
from .texts import identify_license_text

__all__ = ["METADATA_FILES", "manifest_findings", "cargo_expression"]

#: The package metadata files read here, by name.
METADATA_FILES = {"pyproject.toml", "setup.cfg", "package.json", "Cargo.toml"}


def _line_of(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _load_toml(text: str) -> dict | None:
    if tomllib is None:
        return None
    try:
        return tomllib.loads(text)
    except Exception:  # noqa: BLE001 — a broken file is reported, not raised
        return None


def _toml_fallback(text: str, table: str) -> dict:
    """`license = "…"` under `[table]`, for interpreters without a TOML parser."""
    m = re.search(rf"^\[{re.escape(table)}\][ \t]*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not m:
        return {}
    lic = re.search(r"^license[ \t]*=[ \t]*\"([^\"]*)\"", m.group(1), re.M)
    return {"license": lic.group(1)} if lic else {}


def _file_findings(base: Path, rel_dir: str, name: str, source: str, owner: str,
                   line: int | None) -> list[LicenseFinding]:
    """Findings for a licence file that metadata points to (`{file = …}`, `SEE LICENSE IN …`)."""
    target = (base / name).resolve()
    rel = PurePosixPath(rel_dir, name).as_posix() if rel_dir else PurePosixPath(name).as_posix()
    try:
        text = target.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [LicenseFinding(owner, line, source, name, None, (), f"licence file {rel} not found")]
    matches = identify_license_text(text)
    if not matches:
        return [LicenseFinding(owner, line, source, name, None, (), f"unrecognised licence text in {rel}")]
    return [finding(owner, line, source, m.spdx) for m in matches]


def _pyproject(rel: str, text: str, base: Path) -> list[LicenseFinding]:
    data = _load_toml(text)
    if data is None:
        data = {"project": _toml_fallback(text, "project")}
    out: list[LicenseFinding] = []
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    rel_dir = str(PurePosixPath(rel).parent) if "/" in rel else ""
    lic = project.get("license")
    line = _line_of(text, r"^\s*license\s*=")
    if isinstance(lic, str):
        out.append(finding(rel, line, "pyproject.toml", lic))
    elif isinstance(lic, dict):
        if isinstance(lic.get("text"), str):
            out.append(finding(rel, line, "pyproject.toml", lic["text"]))
        elif isinstance(lic.get("file"), str):
            out += _file_findings(base, rel_dir, lic["file"], "pyproject.toml", rel, line)
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    if isinstance(poetry, dict) and isinstance(poetry.get("license"), str):
        out.append(finding(rel, line, "pyproject.toml", poetry["license"]))
    for classifier in project.get("classifiers", []) if isinstance(project.get("classifiers"), list) else []:
        if isinstance(classifier, str) and classifier.startswith("License :: "):
            spdx = CLASSIFIERS.get(classifier[len("License :: "):])
            if spdx:
                out.append(LicenseFinding(rel, _line_of(text, re.escape(classifier)), "pyproject.toml",
                                          classifier, spdx, (spdx,)))
    return out


def _setup_cfg(rel: str, text: str) -> list[LicenseFinding]:
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read_string(text)
        lic = cfg.get("metadata", "license", fallback=None) or cfg.get("metadata", "license_expression", fallback=None)
    except configparser.Error as err:
        return [LicenseFinding(rel, None, "setup.cfg", "", None, (), f"unreadable setup.cfg: {one_line(err)}")]
    return [finding(rel, _line_of(text, r"^\s*license(_expression)?\s*[=:]"), "setup.cfg", lic)] if lic else []


def _package_json(rel: str, text: str, base: Path) -> list[LicenseFinding]:
    try:
        data = json.loads(text)
    except ValueError as err:
        return [LicenseFinding(rel, None, "package.json", "", None, (), f"invalid JSON: {one_line(err)}")]
    if not isinstance(data, dict):
        return []
    rel_dir = str(PurePosixPath(rel).parent) if "/" in rel else ""
    line = _line_of(text, r"\"licenses?\"\s*:")
    values: list[str] = []
    lic = data.get("license")
    if isinstance(lic, str):
        values.append(lic)
    elif isinstance(lic, dict) and isinstance(lic.get("type"), str):
        values.append(lic["type"])
    if isinstance(data.get("licenses"), list):
        for item in data["licenses"]:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                values.append(item["type"])
            elif isinstance(item, str):
                values.append(item)
    out = []
    for value in values:
        see = re.match(r"(?i)see licen[cs]e in\s+(.+)$", value.strip())
        if see:
            out += _file_findings(base, rel_dir, see.group(1).strip(), "package.json", rel, line)
        else:
            out.append(finding(rel, line, "package.json", value))
    return out


def cargo_expression(raw: str) -> str:
    """Cargo's legacy `MIT/Apache-2.0` as the SPDX expression it means."""
    return re.sub(r"\s*/\s*", " OR ", raw)  # Cargo's legacy `MIT/Apache-2.0`


def _cargo_toml(rel: str, text: str, base: Path) -> list[LicenseFinding]:
    data = _load_toml(text)
    if data is None:
        data = {"package": _toml_fallback(text, "package")}
    rel_dir = str(PurePosixPath(rel).parent) if "/" in rel else ""
    out = []
    tables = [data.get("package")]
    workspace = data.get("workspace")
    if isinstance(workspace, dict):
        tables.append(workspace.get("package"))
    for table in tables:
        if not isinstance(table, dict):
            continue
        lic = table.get("license")
        if isinstance(lic, str):
            out.append(finding(rel, _line_of(text, r"^\s*license\s*="), "Cargo.toml", lic, cargo_expression))
        lic_file = table.get("license-file")
        if isinstance(lic_file, str):
            out += _file_findings(base, rel_dir, lic_file, "Cargo.toml", rel,
                                  _line_of(text, r"^\s*license-file\s*="))
    return out


def manifest_findings(rel: str, text: str, base: Path) -> list[LicenseFinding]:
    """The licences a metadata file (`rel`, one of `METADATA_FILES`) declares; `base` is its
    directory on disk, for the licence files it points to."""
    name = rel.rsplit("/", 1)[-1]
    if name == "pyproject.toml":
        return _pyproject(rel, text, base)
    if name == "setup.cfg":
        return _setup_cfg(rel, text)
    if name == "package.json":
        return _package_json(rel, text, base)
    if name == "Cargo.toml":
        return _cargo_toml(rel, text, base)
    return []
