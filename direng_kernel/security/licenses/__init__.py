"""Licence detection for a code base and licence policy for patches: the public surface
(`docs/security-scanning.md`). Each job has its own module:

* `spdx` — SPDX expressions (`parse_expression`: normalized, never raises), ids, trove
  classifiers and `SPDX-License-Identifier:` tags,
* `texts` — licence texts and notices identified by key phrases; licence file names,
* `manifests` — licences declared in `pyproject.toml`, `setup.cfg`, `package.json`, `Cargo.toml`,
* `detect` — one file's findings (`license_findings`) and a tree's (`detect_licenses`),
* `findings` — `LicenseFinding`, `LicenseReport`, `LicenseError`,
* `policy` — `LicensePolicy` (forbidden/allowed ids and globs) and `load_license_policy`,
* `patches` — `check_patch`: the licences a unified diff adds, checked against a policy.
"""

from __future__ import annotations

from .detect import detect_licenses
from .findings import LicenseError, LicenseFinding, LicenseReport
from .patches import Violation, check_patch
from .policy import LicensePolicy, load_license_policy
from .spdx import ParsedLicense, parse_expression

__all__ = [
    "LicenseError", "LicenseFinding", "LicenseReport", "LicensePolicy", "Violation", "ParsedLicense",
    "parse_expression", "detect_licenses", "check_patch", "load_license_policy",
]
