"""Licence detection (SPDX tags, licence files, package metadata), licence policy over patches,
and the `scan` report and CLI built on top of them (real files in temporary trees)."""

from __future__ import annotations

import argparse
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from direng_kernel.cli import scan_cmd
from direng_kernel.errors import DirEngError
from direng_kernel.security.licenses import (
    LicenseError,
    LicensePolicy,
    check_patch,
    detect_licenses,
    load_license_policy,
    parse_expression,
)
from direng_kernel.security.licenses.patches import patch_additions
from direng_kernel.security.licenses.texts import identify_license_text
from direng_kernel.security.scan import ScanError, scan_path


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def found(report, source: str | None = None) -> list[tuple[str, int | None, str | None]]:
    return [(f.path, f.line, f.expression) for f in report.findings if source is None or f.source == source]


# Licence texts, shortened to their identifying parts.
MIT_TEXT = """
MIT License

Copyright (c) 2024 Jane Example

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
"""
APACHE_TEXT = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
"""
GPL3_TEXT = """
                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.

                            Preamble

  The GNU General Public License is a free, copyleft license for
software and other kinds of works.

  13. Use with the GNU Affero General Public License.

                     How to Apply These Terms to Your New Programs

    This program is free software: you can redistribute it and/or modify
    it under the terms of the GNU General Public License as published by
    the Free Software Foundation, either version 3 of the License, or
    (at your option) any later version.
"""
GPL2_TEXT = """
                    GNU GENERAL PUBLIC LICENSE
                       Version 2, June 1991
"""
LGPL21_TEXT = """
                  GNU LESSER GENERAL PUBLIC LICENSE
                       Version 2.1, February 1999

  you may apply the terms of the ordinary GNU General Public License, version 2,
  instead of to this Library.
"""
AGPL_TEXT = """
                    GNU AFFERO GENERAL PUBLIC LICENSE
                       Version 3, 19 November 2007
"""
BSD3_TEXT = """
Copyright (c) 2024, Jane Example
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice.
2. Redistributions in binary form must reproduce the above copyright notice.
3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
"""
BSD2_TEXT = BSD3_TEXT.split("3. Neither")[0]
ISC_TEXT = """
ISC License

Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.
"""
MPL_TEXT = """
Mozilla Public License Version 2.0
==================================
"""
UNLICENSE_TEXT = """
This is free and unencumbered software released into the public domain.
"""
AGPL_NOTICE = [
    "# This program is free software: you can redistribute it and/or modify",
    "# it under the terms of the GNU Affero General Public License as published",
    "# by the Free Software Foundation, either version 3 of the License, or",
    "# (at your option) any later version.",
]


# ---------------------------------------------------------------------------------------------
# Expressions

@pytest.mark.parametrize("raw,expected", [
    ("MIT", "MIT"), ("mit", "MIT"), ("gpl-3.0", "GPL-3.0-only"), ("GPL-2.0+", "GPL-2.0-or-later"),
    ("MIT OR Apache-2.0", "MIT OR Apache-2.0"), ("(mit or apache-2.0) and bsd-3-clause",
                                                 "(MIT OR Apache-2.0) AND BSD-3-Clause"),
    ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception"),
    ("LicenseRef-Proprietary", "LicenseRef-Proprietary"), ("MIT License", "MIT"), ("Apache 2.0", "Apache-2.0"),
])
def test_parse_expression_normalizes(raw, expected):
    parsed = parse_expression(raw)
    assert parsed.valid, parsed.error
    assert parsed.expression == expected


@pytest.mark.parametrize("raw", ["MIT AND", "(MIT OR", "Foo-License-9", "MIT/Apache-2.0", "", "MIT OR Bogus"])
def test_invalid_expressions_are_reported_not_raised(raw):
    parsed = parse_expression(raw)
    assert not parsed.valid
    assert parsed.error and "\n" not in parsed.error


# ---------------------------------------------------------------------------------------------
# SPDX tags in source files

def test_spdx_headers_in_py_js_rs_go_and_more(tmp_path):
    write(tmp_path, "pkg/mod.py", "#!/usr/bin/env python\n# SPDX-License-Identifier: MIT\nx = 1\n")
    write(tmp_path, "web/app.js", "// SPDX-License-Identifier: Apache-2.0 OR MIT\nexport const a = 1;\n")
    write(tmp_path, "crate/src/lib.rs", "// SPDX-License-Identifier: mpl-2.0\npub fn f() {}\n")
    write(tmp_path, "cmd/main.go", "/* SPDX-License-Identifier: GPL-2.0+ */\npackage main\n")
    write(tmp_path, "web/page.html", "<!-- SPDX-License-Identifier: ISC -->\n<p>hi</p>\n")
    write(tmp_path, "db/schema.sql", "-- SPDX-License-Identifier: BSD-2-Clause\nselect 1;\n")
    write(tmp_path, "pkg/strings.py", 'TAG = "SPDX-License-Identifier: GPL-3.0"  # in code: not a header\n')
    report = detect_licenses(tmp_path)
    assert sorted(found(report, "spdx-header")) == [
        ("cmd/main.go", 1, "GPL-2.0-or-later"),
        ("crate/src/lib.rs", 1, "MPL-2.0"),
        ("db/schema.sql", 1, "BSD-2-Clause"),
        ("pkg/mod.py", 2, "MIT"),
        ("web/app.js", 1, "Apache-2.0 OR MIT"),
        ("web/page.html", 1, "ISC"),
    ]
    assert report.licenses == ["Apache-2.0", "BSD-2-Clause", "GPL-2.0-or-later", "ISC", "MIT", "MPL-2.0"]


def test_invalid_spdx_header_reported(tmp_path):
    write(tmp_path, "a.py", "# SPDX-License-Identifier: MIT AND\n")
    write(tmp_path, "b.ts", "// SPDX-License-Identifier: Not-A-Licence\n")
    report = detect_licenses(tmp_path)
    assert [(f.path, f.line) for f in report.invalid] == [("a.py", 1), ("b.ts", 1)]
    assert all(f.error and f.expression is None or "unknown" in f.error for f in report.invalid)


def test_gitignored_and_dependency_dirs_are_skipped(tmp_path):
    write(tmp_path, ".gitignore", "generated/\n")
    write(tmp_path, "generated/x.py", "# SPDX-License-Identifier: GPL-3.0-only\n")
    write(tmp_path, "node_modules/dep/index.js", "// SPDX-License-Identifier: AGPL-3.0-only\n")
    write(tmp_path, "node_modules/dep/LICENSE", AGPL_TEXT)
    write(tmp_path, "src/ok.py", "# SPDX-License-Identifier: MIT\n")
    assert detect_licenses(tmp_path).licenses == ["MIT"]


# ---------------------------------------------------------------------------------------------
# Licence files

@pytest.mark.parametrize("text,expected", [
    (MIT_TEXT, ["MIT"]), (APACHE_TEXT, ["Apache-2.0"]), (GPL3_TEXT, ["GPL-3.0-only"]),
    (GPL2_TEXT, ["GPL-2.0-only"]), (LGPL21_TEXT, ["LGPL-2.1-only"]), (AGPL_TEXT, ["AGPL-3.0-only"]),
    (BSD3_TEXT, ["BSD-3-Clause"]), (BSD2_TEXT, ["BSD-2-Clause"]), (ISC_TEXT, ["ISC"]),
    (MPL_TEXT, ["MPL-2.0"]), (UNLICENSE_TEXT, ["Unlicense"]), (MIT_TEXT + APACHE_TEXT, ["MIT", "Apache-2.0"]),
    ("\n".join(AGPL_NOTICE), ["AGPL-3.0-or-later"]),
    ("under the terms of the GNU General Public License version 2 as published by the FSF", ["GPL-2.0-only"]),
    ("Just some README text about licensing in general.", []),
])
def test_identify_license_text(text, expected):
    assert [m.spdx for m in identify_license_text(text)] == expected


def test_license_files_found_with_lines(tmp_path):
    write(tmp_path, "LICENSE", MIT_TEXT)
    write(tmp_path, "third_party/gplthing/COPYING", GPL3_TEXT)
    write(tmp_path, "third_party/gplthing/code.py", "x = 1\n")
    write(tmp_path, "LICENSE-APACHE", APACHE_TEXT)
    write(tmp_path, "docs/LICENSE.md", "We have not decided yet.\n")
    report = detect_licenses(tmp_path)
    assert found(report, "license-file") == [
        ("LICENSE", 5, "MIT"),
        ("LICENSE-APACHE", 1, "Apache-2.0"),
        ("docs/LICENSE.md", None, None),
        ("third_party/gplthing/COPYING", 1, "GPL-3.0-only"),
    ]
    unrecognised = [f for f in report.invalid if f.path == "docs/LICENSE.md"]
    assert unrecognised and "unrecognised" in unrecognised[0].error


def test_notice_in_source_header(tmp_path):
    write(tmp_path, "vendored/util.py", "\n".join(AGPL_NOTICE) + "\n\nx = 1\n")
    write(tmp_path, "vendored/both.py", "# SPDX-License-Identifier: Apache-2.0\n"
                                        "# Licensed under the Apache License, Version 2.0\n")
    report = detect_licenses(tmp_path)
    assert found(report, "notice") == [("vendored/util.py", 2, "AGPL-3.0-or-later")]
    assert found(report, "spdx-header") == [("vendored/both.py", 1, "Apache-2.0")]


# ---------------------------------------------------------------------------------------------
# Package metadata

def test_package_metadata(tmp_path):
    write(tmp_path, "pyproject.toml", """
        [project]
        name = "demo"
        license = "Apache-2.0 OR mit"
    """)
    write(tmp_path, "legacy/pyproject.toml", """
        [project]
        name = "legacy"
        license = {text = "MIT License"}
        classifiers = ["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"]
    """)
    write(tmp_path, "filed/pyproject.toml", """
        [project]
        name = "filed"
        license = {file = "COPYING"}
    """)
    write(tmp_path, "filed/COPYING", GPL2_TEXT)
    write(tmp_path, "setup.cfg", "[metadata]\nname = demo\nlicense = BSD-3-Clause\n")
    write(tmp_path, "web/package.json", json.dumps({"name": "web", "license": "(ISC OR GPL-3.0)"}, indent=2))
    write(tmp_path, "old/package.json", json.dumps({"licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]}))
    write(tmp_path, "see/package.json", json.dumps({"license": "SEE LICENSE IN LICENSE.txt"}))
    write(tmp_path, "see/LICENSE.txt", ISC_TEXT)
    write(tmp_path, "crate/Cargo.toml", '[package]\nname = "c"\nversion = "0.1.0"\nlicense = "MIT/Apache-2.0"\n')
    report = detect_licenses(tmp_path)
    meta = {(f.path, f.source, f.expression) for f in report.findings if f.source != "license-file"}
    assert meta == {
        ("pyproject.toml", "pyproject.toml", "Apache-2.0 OR MIT"),
        ("legacy/pyproject.toml", "pyproject.toml", "MIT"),
        ("legacy/pyproject.toml", "pyproject.toml", "GPL-3.0-only"),
        ("filed/pyproject.toml", "pyproject.toml", "GPL-2.0-only"),
        ("setup.cfg", "setup.cfg", "BSD-3-Clause"),
        ("web/package.json", "package.json", "ISC OR GPL-3.0-only"),
        ("old/package.json", "package.json", "MIT"),
        ("old/package.json", "package.json", "Apache-2.0"),
        ("see/package.json", "package.json", "ISC"),
        ("crate/Cargo.toml", "Cargo.toml", "MIT OR Apache-2.0"),
    }
    assert ("pyproject.toml", 3) in {(f.path, f.line) for f in report.findings}
    assert report.invalid == []


def test_broken_metadata_is_reported_not_raised(tmp_path):
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\nlicense = "MIT AND"\n')
    write(tmp_path, "package.json", "{not json")
    write(tmp_path, "Cargo.toml", "[package\nlicense = 'MIT'")
    write(tmp_path, "setup.cfg", "no section header here\n")
    report = detect_licenses(tmp_path)
    assert {f.path for f in report.invalid} == {"pyproject.toml", "package.json", "setup.cfg"}
    for f in report.invalid:
        assert f.error and "\n" not in f.error


def test_detect_licenses_on_this_repository():
    root = Path(__file__).resolve().parent.parent
    report = detect_licenses(root)
    assert "BSD-3-Clause" in report.licenses  # pyproject's project.license
    # the package's own code states no licence: not the detector's phrase tables, not its aliases
    assert [str(f) for f in report.findings if f.path.startswith("direng_kernel/")] == []


def test_detect_licenses_missing_root(tmp_path):
    with pytest.raises(LicenseError) as err:
        detect_licenses(tmp_path / "nope")
    assert isinstance(err.value, DirEngError) and "nope" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Policy

STRONG_COPYLEFT = LicensePolicy(allowed=None, forbidden=["GPL-*", "AGPL-*"])


@pytest.mark.parametrize("expression,ok", [
    ("MIT", True), ("LGPL-3.0-only", True), ("GPL-3.0-only", False), ("GPL-2.0+", False),
    ("AGPL-3.0-or-later", False), ("MIT OR GPL-3.0", True), ("MIT AND GPL-3.0", False),
    ("(GPL-3.0 OR AGPL-3.0) AND MIT", False), ("(GPL-3.0 OR Apache-2.0) AND MIT", True),
    ("gpl-2.0-only WITH Classpath-exception-2.0", False), ("LicenseRef-Internal", True),
    ("Bogus-1.0", False), ("MIT OR Bogus-1.0", True), ("MIT AND", False),
])
def test_policy_expression_semantics(expression, ok):
    assert STRONG_COPYLEFT.evaluate(expression).ok is ok


def test_policy_allowed_list_and_reasons():
    policy = LicensePolicy(allowed=["MIT", "Apache-*", "BSD-?-Clause"], forbidden=["Apache-1.*"])
    assert policy.permits("MIT AND Apache-2.0 AND BSD-3-Clause")
    assert not policy.permits("ISC")
    assert policy.evaluate("ISC").reasons == ("ISC is not in the allowed list",)
    assert not policy.permits("Apache-1.1")
    assert "forbidden" in policy.evaluate("Apache-1.1").reasons[0]
    # a bare GNU id covers -only and -or-later; literal entries are case-insensitive
    bare = LicensePolicy(forbidden=["gpl-3.0"])
    assert not bare.permits("GPL-3.0-only") and not bare.permits("GPL-3.0-or-later") and bare.permits("GPL-2.0-only")
    # an exception may be allowed explicitly while the base licence is forbidden
    classpath = LicensePolicy(allowed=["MIT", "GPL-2.0-only WITH Classpath-exception-2.0"], forbidden=["GPL-*"])
    assert not classpath.permits("GPL-2.0-only WITH Classpath-exception-2.0")  # forbidden decides first
    allow_exc = LicensePolicy(allowed=["MIT", "GPL-2.0-only WITH Classpath-exception-2.0"])
    assert allow_exc.permits("GPL-2.0-only WITH Classpath-exception-2.0")
    assert not allow_exc.permits("GPL-2.0-only")


def test_load_license_policy_yaml_and_json(tmp_path):
    y = write(tmp_path, "policy.yaml", "forbidden: [GPL-*, AGPL-*]\nallowed:\n  - MIT\n  - Apache-2.0\n")
    policy = load_license_policy(y)
    assert policy.forbidden == ["GPL-*", "AGPL-*"] and policy.allowed == ["MIT", "Apache-2.0"]
    j = write(tmp_path, "policy.json", json.dumps({"forbidden": ["AGPL-*"]}))
    policy = load_license_policy(j)
    assert policy.allowed is None and policy.forbidden == ["AGPL-*"]


@pytest.mark.parametrize("name,content,needle", [
    ("missing.yaml", None, "not found"),
    ("bad.yaml", "forbidden: [GPL-*\n", "not valid YAML"),
    ("bad.json", "{forbidden: 1", "not valid JSON"),
    ("list.yaml", "- GPL-*\n", "expected a mapping"),
    ("keys.yaml", "forbid: [GPL-*]\n", "unknown key"),
    ("types.yaml", "forbidden: GPL-*\n", "must be a list"),
])
def test_load_license_policy_errors(tmp_path, name, content, needle):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(LicenseError) as err:
        load_license_policy(path)
    message = str(err.value)
    assert needle in message and "\n" not in message


# ---------------------------------------------------------------------------------------------
# Patches

def new_file_patch(path: str, lines: list[str]) -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..1111111\n"
            f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}")


def test_check_patch_flags_gpl_header_and_passes_mit():
    gpl = new_file_patch("src/new.rs", ["// SPDX-License-Identifier: GPL-3.0-only", "fn main() {}"])
    violations = check_patch(gpl, STRONG_COPYLEFT)
    assert [(v.path, v.line, v.license, v.source) for v in violations] == [
        ("src/new.rs", 1, "GPL-3.0-only", "spdx-header")]
    assert "GPL-*" in violations[0].reason and str(violations[0]).startswith("src/new.rs:1: GPL-3.0-only")
    mit = new_file_patch("src/ok.rs", ["// SPDX-License-Identifier: MIT", "fn main() {}"])
    assert check_patch(mit, STRONG_COPYLEFT) == []


def test_check_patch_or_and_semantics():
    either = new_file_patch("a.py", ["# SPDX-License-Identifier: MIT OR GPL-3.0-or-later"])
    both = new_file_patch("b.py", ["# SPDX-License-Identifier: MIT AND GPL-3.0-or-later"])
    assert check_patch(either, STRONG_COPYLEFT) == []
    [v] = check_patch(both, STRONG_COPYLEFT)
    assert (v.path, v.line, v.license) == ("b.py", 1, "MIT AND GPL-3.0-or-later")


def test_check_patch_modified_file_line_numbers_and_removed_lines():
    patch = textwrap.dedent("""\
        diff --git a/lib/util.py b/lib/util.py
        index 1111111..2222222 100644
        --- a/lib/util.py
        +++ b/lib/util.py
        @@ -10,5 +10,9 @@ def f():
             a = 1
        --- SPDX-License-Identifier: GPL-2.0-only
        -# SPDX-License-Identifier: GPL-2.0-only
        +# This program is free software: you can redistribute it and/or modify
        +# it under the terms of the GNU Affero General Public License as published
        +# by the Free Software Foundation, either version 3 of the License, or
        +# (at your option) any later version.
             b = 2
        -    c = 3
        +    c = 4
        +    d = 5
        """)
    additions = patch_additions(patch)
    assert [n for n, _ in additions["lib/util.py"]] == [11, 12, 13, 14, 16, 17]
    [v] = check_patch(patch, STRONG_COPYLEFT)
    assert (v.path, v.line, v.license, v.source) == ("lib/util.py", 12, "AGPL-3.0-or-later", "license-text")


def test_check_patch_license_file_metadata_and_deletions():
    license_file = new_file_patch("vendor/gplthing/COPYING", GPL3_TEXT.strip("\n").splitlines())
    [v] = check_patch(license_file, STRONG_COPYLEFT)
    assert (v.path, v.line, v.license, v.source) == ("vendor/gplthing/COPYING", 1, "GPL-3.0-only", "license-text")
    meta = textwrap.dedent("""\
        --- a/web/package.json
        +++ b/web/package.json
        @@ -1,3 +1,3 @@
         {
        -  "license": "MIT",
        +  "license": "AGPL-3.0-only",
         }
        --- a/crate/Cargo.toml
        +++ b/crate/Cargo.toml
        @@ -3 +3 @@
        -license = "MIT"
        +license = "MIT/GPL-3.0"
        """)
    assert [(v.path, v.line, v.license) for v in check_patch(meta, STRONG_COPYLEFT)] == [
        ("web/package.json", 2, "AGPL-3.0-only")]  # Cargo's MIT/GPL-3.0 is MIT OR GPL-3.0-only
    deletion = textwrap.dedent("""\
        diff --git a/old.py b/old.py
        deleted file mode 100644
        --- a/old.py
        +++ /dev/null
        @@ -1,2 +0,0 @@
        -# SPDX-License-Identifier: GPL-3.0-only
        -x = 1
        """)
    assert patch_additions(deletion) == {} and check_patch(deletion, STRONG_COPYLEFT) == []


def test_check_patch_unknown_and_invalid_expressions_are_violations():
    patch = new_file_patch("x.c", ["// SPDX-License-Identifier: Bogus-9", "/* SPDX-License-Identifier: MIT AND */"])
    violations = check_patch(patch, STRONG_COPYLEFT)
    assert [(v.line, v.license) for v in violations] == [(1, "Bogus-9"), (2, "MIT AND")]
    assert "not a known SPDX" in violations[0].reason and "invalid" in violations[1].reason


def test_check_patch_allowed_list():
    policy = LicensePolicy(allowed=["MIT", "Apache-2.0"], forbidden=[])
    patch = new_file_patch("a.go", ["// SPDX-License-Identifier: ISC", "package a"])
    [v] = check_patch(patch, policy)
    assert v.reason == "ISC is not in the allowed list"


def test_check_patch_on_a_real_git_diff(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=T", "-c", "user.email=t@example.com",
                               "-c", "commit.gpgsign=false", *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    write(tmp_path, "main.py", "print('hi')\n")
    git("add", "-A")
    git("commit", "-q", "-m", "init")
    write(tmp_path, "main.py", "# SPDX-License-Identifier: AGPL-3.0-or-later\nprint('hi')\n")
    write(tmp_path, "LICENSE", AGPL_TEXT)
    git("add", "-A")
    diff = git("diff", "--cached")
    violations = check_patch(diff, STRONG_COPYLEFT)
    assert sorted((v.path, v.line, v.license) for v in violations) == [
        ("LICENSE", 1, "AGPL-3.0-only"), ("main.py", 1, "AGPL-3.0-or-later")]


# ---------------------------------------------------------------------------------------------
# scan_path and the CLI

@pytest.fixture
def scan_tree(tmp_path):
    root = tmp_path / "proj"
    write(root, "LICENSE", MIT_TEXT)
    write(root, "src/contact.py", '"""Maintainer: jane.oneil@fastmail.fm"""\nHOST = "127.0.0.1"\n')
    write(root, "src/vendored.go", "// SPDX-License-Identifier: GPL-3.0-only\npackage v\n")
    write(root, "src/keys.py", 'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"\n')
    write(root, ".gitignore", "secret_dump/\n")
    write(root, "secret_dump/people.txt", "jane.oneil@fastmail.fm\n")
    return root


def test_scan_path_report_frame_and_json(scan_tree):
    report = scan_path(scan_tree)
    frame = report.to_frame()
    assert list(frame.columns)[:5] == ["kind", "category", "path", "line", "detail"]
    assert set(frame["category"]) <= {"secret", "pii", "license"}
    pii = frame[frame["category"] == "pii"]
    assert set(pii["path"]) == {"src/contact.py"}  # the gitignored dump is not scanned
    email = pii[pii["kind"] == "email"].iloc[0]
    assert email["line"] == 1 and email["detail"] == "j***@fastmail.fm" and email["blocking"]
    loopback = pii[pii["kind"] == "ipv4"].iloc[0]
    assert not loopback["blocking"]
    lic = frame[frame["category"] == "license"]
    assert {(r.path, r.line, r.detail) for r in lic.itertuples()} == {
        ("LICENSE", 5, "MIT"), ("src/vendored.go", 1, "GPL-3.0-only")}
    # The secrets scanner is a hard dependency: it must have loaded and found the key.
    assert report.secrets_checked, report.notes
    assert "src/keys.py" in set(frame[frame["category"] == "secret"]["path"])
    data = json.loads(report.to_json())
    assert data["files_scanned"] == report.files_scanned >= 4
    assert "jane.oneil@fastmail.fm" not in report.to_json()
    assert "AKIAIOSFODNN7EXAMPLE" not in report.to_json()


def test_scan_path_with_policy_single_file_and_missing(scan_tree):
    report = scan_path(scan_tree, license_policy=STRONG_COPYLEFT)
    assert report.blocking_categories() >= {"pii", "license"}
    blocked = [f for f in report.of("license") if f.blocking]
    assert [(f.path, f.line) for f in blocked] == [("src/vendored.go", 1)]
    single = scan_path(scan_tree / "src" / "contact.py")
    assert single.files_scanned == 1 and [f.kind for f in single.of("pii")] == ["email", "ipv4"]
    with pytest.raises(ScanError):
        scan_path(scan_tree / "nope")
    assert scan_path(scan_tree, categories=("pii",)).counts()["license"] == 0


def run_scan(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="direng")
    sub = parser.add_subparsers(dest="command")
    scan_cmd.add_parser(sub)
    return scan_cmd.run(parser.parse_args(["scan", *argv]))


def test_cli_json_and_exit_codes(scan_tree, tmp_path, capsys):
    assert run_scan([str(scan_tree), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["pii"] >= 1 and {f["category"] for f in out["findings"]} >= {"pii", "license"}

    assert run_scan([str(scan_tree), "--json", "--fail-on", "pii"]) == 1
    capsys.readouterr()
    assert run_scan([str(scan_tree / "LICENSE"), "--fail-on", "pii,license"]) == 0
    capsys.readouterr()

    policy = write(tmp_path, "policy.yaml", "forbidden: [GPL-*]\n")
    assert run_scan([str(scan_tree), "--fail-on", "license", "--license-policy", str(policy)]) == 1
    table = capsys.readouterr().out
    assert "src/vendored.go:1" in table and "forbidden" in table and "files scanned" in table
    assert "127.0.0.1" not in table and "ipv4" not in table  # benign PII only with --all
    assert run_scan([str(scan_tree), "--all"]) == 0
    assert "ipv4" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["{root}/missing"], "no such file or directory"),
    (["{root}", "--fail-on", "pii,bogus"], "unknown category 'bogus'"),
    (["{root}", "--license-policy", "{root}/nope.yaml"], "licence policy not found"),
])
def test_cli_input_errors_exit_2_with_one_line(scan_tree, capsys, argv, needle):
    assert run_scan([a.format(root=scan_tree) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("direng: error: ")


# ---------------------------------------------------------------------------------------------
# notebooks: scanned by cell, outputs included (for secrets and PII)

PNG_OUTPUT = {"output_type": "display_data", "metadata": {},
              "data": {"image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
                       "text/plain": "<Figure size 640x480 with 1 Axes>"}}


def notebook_json(cells: list[dict]) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                       "metadata": {"kernelspec": {"name": "python3", "language": "python"}}})


@pytest.fixture
def notebook_tree(tmp_path):
    root = tmp_path / "proj"
    write(root, "analysis.ipynb", notebook_json([
        {"cell_type": "markdown", "metadata": {}, "source": ["# Contacts\n", "Maintainer: jane.oneil@fastmail.fm"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 1,
         "source": "# SPDX-License-Identifier: GPL-3.0-only\nAWS_ACCESS_KEY_ID = \"AKIAIOSFODNN7EXAMPLE\"\nprint(customers)",
         "outputs": [
             {"output_type": "stream", "name": "stdout", "text": ["loaded 2 rows\n"]},
             {"output_type": "execute_result", "execution_count": 1, "metadata": {},
              "data": {"text/html": "<table><tr><td>maria.lopez@northwind-traders.de</td></tr></table>",
                       "text/plain": "   email\n0  maria.lopez@northwind-traders.de"}},
             PNG_OUTPUT]},
        {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "x = 1",
         "outputs": [{"output_type": "error", "ename": "KeyError", "evalue": "'ghp_'",
                      "traceback": ["token = 'ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789'"]}]},
    ]))
    # nbformat 3: two worksheets, numbered as the index numbers them (flattened in order)
    write(root, "old.ipynb", json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [
        {"cells": [{"cell_type": "heading", "level": 1, "source": "Old"}]},
        {"cells": [{"cell_type": "code", "language": "python", "input": "\n\nSSN = '219-09-9988'", "outputs": []}]}]}))
    write(root, "broken.ipynb", '{"nbformat": 4, "cells": 3, "note": "AKIAIOSFODNN7EXAMPLE"}')
    return root


def test_scan_walks_notebooks_by_cell_with_outputs(notebook_tree):
    report = scan_path(notebook_tree)
    found = {(f.path, f.cell, f.part, f.line, f.category) for f in report.findings}
    assert ("analysis.ipynb", 0, "source", 2, "pii") in found                 # the markdown's e-mail
    assert ("analysis.ipynb", 1, "source", 1, "license") in found             # an SPDX tag in a code cell
    assert ("analysis.ipynb", 1, "source", 2, "secret") in found
    pii_out = [f for f in report.findings if f.part == "output" and f.category == "pii"]
    assert {(f.cell, f.kind) for f in pii_out} == {(1, "email")} and len(pii_out) == 2  # HTML and plain text
    assert any(f.cell == 2 and f.part == "output" and f.category == "secret" for f in report.findings)  # traceback
    assert not any(f.part == "output" and f.category == "license" for f in report.findings)
    assert ("old.ipynb", 1, "source", 3, "pii") in found                      # v3: worksheets flattened
    # The index numbers cells the same way.
    from direng_kernel.index.notebooks import read_notebook
    assert read_notebook("old.ipynb", (notebook_tree / "old.ipynb").read_text()).cells[1].source.endswith("9988'")

    # A malformed notebook: one note line, and its text is still scanned as a file.
    assert [n for n in report.notes if "broken.ipynb" in n] == [
        "broken.ipynb: malformed notebook (no list of cells); scanned as plain text"]
    assert ("broken.ipynb", None, None, 1, "secret") in found
    assert report.files_scanned == 3 and report.secrets_checked
    text = report.to_json()
    assert "AKIAIOSFODNN7EXAMPLE" not in text and "maria.lopez@northwind-traders.de" not in text
    assert json.loads(text)["findings"][0].keys() >= {"cell", "part"}
    frame = report.to_frame()
    assert str(frame["cell"].dtype) == "Int64" and set(frame["part"].dropna()) == {"source", "output"}


def test_cli_reports_notebook_findings_by_cell(notebook_tree, capsys):
    assert run_scan([str(notebook_tree), "--fail-on", "secret"]) == 1
    out = capsys.readouterr().out
    assert "analysis.ipynb:cell 1:2" in out and "analysis.ipynb:cell 1 output:" in out
    assert "note: broken.ipynb: malformed notebook (no list of cells); scanned as plain text" in out
    assert run_scan([str(notebook_tree / "analysis.ipynb"), "--json"]) == 0  # one notebook, as a file
    single = json.loads(capsys.readouterr().out)
    assert single["files_scanned"] == 1 and {f["cell"] for f in single["findings"]} == {0, 1, 2}
