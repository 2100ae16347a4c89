"""Attack run (issue 8): structural credentials are redacted even when they read like words.

The word heuristic (`_secretish`) exists so a keyword detector's `password = "password1"` does not
teach the redactor the word `password1`. A letter-only AWS key id (`AKIAQWERTYUIOPASDFGH`) also
looks like a word, yet its shape alone makes it a credential: `direng scan` flagged it while
scrubbing let it through into index.sqlite3, API replies and notebooks.
"""

from __future__ import annotations

import pytest

from conftest import commit_all, make_repo
from direng_kernel.security.scrub import reset_global_redactor, scrub
from direng_kernel.security.secrets import _plugins, scan_text

AWS_LETTERS = "AKIAQWERTYUIOPASDFGH"
LETTERS_36 = "AbCdEfGhIjKlMnOpQrStUvWxYzQwErTyUiOp"
PEM_BODY = ["MIIEpAIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumge5zS1hUjnnnrq8kq2ND5AW",
            "QmVyeWxLbmlnaHRGYWxjbIVSaXZlckFvdWZaYWluUGRvbmVGaWVsZEZvcmVzdExm",  # letters only
            "bE0m9QKBgQDrGdprKnU5fS1q2mWbNk3ZqYYx3aB0yF1c6N6LX0uV1lT8sQyZ3c4M"]
PEM = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *PEM_BODY, "-----END RSA PRIVATE KEY-----"])
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
       ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")

STRUCTURAL = [  # (expected finding type, line of code, values that must not survive)
    ("AWS Access Key", f'K = "{AWS_LETTERS}"', [AWS_LETTERS]),
    ("AWS Access Key", 'K = "AKIAQ3EGRA7FAKEKEY7X"', ["AKIAQ3EGRA7FAKEKEY7X"]),
    ("GitHub Token", f'T = "ghp_{LETTERS_36}"', [f"ghp_{LETTERS_36}"]),
    ("Stripe Access Key", f'S = "sk_live_{LETTERS_36[:24]}"', [f"sk_live_{LETTERS_36[:24]}"]),
    ("Slack Token", 'S = "xoxb-2048193701-5121337420695-QmVyeWxLbmlnaHRGYWxj"',
     ["xoxb-2048193701-5121337420695-QmVyeWxLbmlnaHRGYWxj"]),
    ("Slack Token", 'H = "https://hooks.slack.com/services/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"',
     ["https://hooks.slack.com/services/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"]),
    ("JSON Web Token", f"auth: {JWT}", [JWT]),
    ("Private Key", PEM, PEM_BODY),
]


@pytest.fixture(autouse=True)
def fresh_redactor():
    reset_global_redactor()
    yield
    reset_global_redactor()


def test_letter_only_aws_key_id_is_redacted():
    out = scrub(f'K = "{AWS_LETTERS}"')
    assert AWS_LETTERS not in out and "[redacted:" in out


@pytest.mark.parametrize("kind,code,secrets", STRUCTURAL, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(STRUCTURAL)])
def test_structural_kinds_are_redacted_whatever_they_look_like(kind, code, secrets):
    assert kind in {f.type for f in scan_text(code, "config.py")}  # the detector we mean fires
    out = scrub(code, "config.py")
    for value in secrets:
        assert value not in out
        assert value not in scrub(f"echo {value} elsewhere")  # learnt: redacted wherever it occurs


def test_keyword_and_basic_auth_values_that_are_words_are_not_learnt():
    assert {f.type for f in scan_text('password = "password1"', "app.py")} == {"Secret Keyword"}
    assert scrub('password = "password1"', "app.py") == 'password = "password1"'
    assert scrub("the password1 field is documented") == "the password1 field is documented"
    url = 'DSN = "https://deploy:changeme@example.org/app"'
    assert {f.type for f in scan_text(url, "app.py")} >= {"Basic Auth Credentials"}
    scrub(url, "app.py")
    assert scrub("please changeme before release") == "please changeme before release"


def test_freeform_types_name_real_detectors():
    from direng_kernel.security.secrets import FREEFORM_TYPES

    produced = {p.type for p in _plugins()} | {"High Entropy Token"}
    assert FREEFORM_TYPES <= produced
    assert {"AWS Access Key", "GitHub Token", "Slack Token", "JSON Web Token", "Private Key"}.isdisjoint(FREEFORM_TYPES)


def _store_hits(store, value: bytes) -> list[str]:
    return [str(p) for p in store.rglob("*") if p.is_file() and value in p.read_bytes()]


def test_indexed_letter_only_aws_key_never_reaches_the_store(tmp_path):
    from direng_kernel.workbench import Workbench

    repo = make_repo(tmp_path / "repo")
    (repo / "deploy_keys.py").write_text(f'"""Deployment keys."""\n\nK = "{AWS_LETTERS}"\n\n\ndef key():\n    return K\n')
    commit_all(repo, "keys")
    wb = Workbench(repo)
    try:
        report = wb.index()
        assert report.added > 0
        store = wb.settings.store
        # checked while the store is open too: the -wal file then holds the fresh pages
        assert _store_hits(store, AWS_LETTERS.encode()) == []
        assert _store_hits(store, b"[redacted:")  # the file was indexed, its key replaced
    finally:
        wb.close()
    assert _store_hits(wb.settings.store, AWS_LETTERS.encode()) == []
