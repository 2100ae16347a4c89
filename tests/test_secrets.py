"""Secret detection, the encrypted vault, redaction and the `direng secrets` command.

Real detect-secrets plugins, real Fernet encryption on disk, real files and processes; the
vault and the audit log live in a per-test directory (DIRENG_VAULT_DIR / DIRENG_AUDIT_LOG).
"""

from __future__ import annotations

import argparse
import base64
import copy
import io
import json
import logging
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from direng_kernel.errors import DirEngError, NotFoundError
from direng_kernel.security import secrets as secret_detection
from direng_kernel.security.audit import read_records, verify
from direng_kernel.security.redact import Redactor, marker_digest
from direng_kernel.security.scrub import RedactingFilter, global_redactor, reset_global_redactor
from direng_kernel.security.secrets import SecretFinding, digest, scan_file, scan_notebook, scan_text
from direng_kernel.security.vault import SecretNotFoundError, Vault, VaultError

REPO = Path(__file__).resolve().parents[1]
AWS_KEY_ID = "AKIAQ3EGRA7TESTKEY7X"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTESTKEY99"
GITHUB = "ghp_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
B64 = "k8Jd9Qx2ZpL4mN7vB1cR5tY3wE6sA0gH9uI2oP8fK4jD"
PEM = textwrap.dedent("""\
    -----BEGIN RSA PRIVATE KEY-----
    MIIEpAIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumge5zS1hUjnnnrq8kq2ND5AW
    bE0m9QKBgQDrGdprKnU5fS1q2mWbNk3ZqYYx3aB0yF1c6N6LX0uV1lT8sQyZ3c4M
    -----END RSA PRIVATE KEY-----""")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private vault directory and audit log per test, and a fresh global redactor."""
    monkeypatch.setenv("DIRENG_VAULT_DIR", str(tmp_path / "vaultdir"))
    monkeypatch.setenv("DIRENG_AUDIT_LOG", str(tmp_path / "vaultdir" / "audit.jsonl"))
    reset_global_redactor()
    yield tmp_path / "vaultdir"
    reset_global_redactor()


def values(findings):
    return {f._value for f in findings}


# ============================================================================ detection

def test_finds_aws_access_key_id_and_secret_access_key():
    text = f'AWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"\naws_secret_access_key = "{AWS_SECRET}"\n'
    findings = scan_text(text)
    by_line = {f.line: f for f in findings}
    assert by_line[1].type == "AWS Access Key" and by_line[1].digest == digest(AWS_KEY_ID)
    assert by_line[2].digest == digest(AWS_SECRET)
    assert values(findings) == {AWS_KEY_ID, AWS_SECRET}


def test_finds_unquoted_secret_access_key_in_a_credentials_file(tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id={AWS_KEY_ID}\naws_secret_access_key={AWS_SECRET}\n")
    assert values(scan_file(creds)) == {AWS_KEY_ID, AWS_SECRET}


def test_finds_the_whole_pem_private_key_block():
    findings = scan_text(f"config:\n{PEM}\nafter = 1\n")
    keys = [f for f in findings if f.type == "Private Key"]
    assert len(keys) == 1 and keys[0].line == 2
    assert keys[0]._value == PEM  # the key material, not just the BEGIN line
    assert len(findings) == 1    # the base64 body lines are part of the block, not extra findings


def test_finds_a_pem_block_inside_json_escaped_text():
    text = json.dumps({"key": PEM + "\n"})
    (finding,) = [f for f in scan_text(text) if f.type == "Private Key"]
    assert "MIIEpAIBAAKCAQEA" in finding._value and finding._value.endswith("-----END RSA PRIVATE KEY-----")


def test_finds_a_github_token():
    (finding,) = scan_text(f"export GH={GITHUB}\n")
    assert finding.type == "GitHub Token" and finding._value == GITHUB


def test_finds_a_high_entropy_base64_string_quoted_and_bare():
    quoted = scan_text(f'blob = "{B64}"\n')
    assert [f.type for f in quoted] == ["Base64 High Entropy String"] and values(quoted) == {B64}
    bare = scan_text(f"Authorization: Bearer {B64}\n")
    assert values(bare) == {B64}


def test_finds_jwt_and_basic_auth_whole_values():
    jwt = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
           ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
    assert values(scan_text(f"token: {jwt}\n")) == {jwt}
    assert values(scan_text("DSN = postgres://admin:hunter2secret@db.example.com/app\n")) == {"hunter2secret"}


ORDINARY = '''\
"""Ordinary code: names that sound secret, hashes, ids, paths and UUIDs, but no secrets."""
import os
import hashlib

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree sha
password = os.environ.get("DB_PASSWORD")
secret = get_secret_key()
api_key_env = "OPENAI_API_KEY"
token_id = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
user_id = "a8098c1af86e11dabd1a00112444be1e"
path = "/usr/lib/python3.11/site-packages/direng_kernel/security/secrets.py"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def check_password(candidate: str, stored_hash: str) -> bool:
    """Compare a password with its stored sha256 (`${PASSWORD}` in templates)."""
    digest = hashlib.sha256(candidate.encode()).hexdigest()
    return digest == stored_hash


class TokenStore:
    def issue(self, user: str, scopes: list[str]) -> str:
        return f"{user}:{','.join(sorted(scopes))}"
'''


def test_no_findings_on_ordinary_code():
    assert scan_text(ORDINARY, "ordinary.py") == []
    assert scan_text(ORDINARY) == []


@pytest.mark.parametrize("rel", ["direng_kernel/errors.py", "direng_kernel/cli/main.py",
                                 "direng_kernel/security/audit.py", "direng_kernel/security/vault.py",
                                 "direng_kernel/security/vault_file.py"])
def test_no_findings_on_this_projects_source(rel):
    assert scan_file(REPO / rel) == []


def test_allowlist_pragma_silences_a_line():
    assert scan_text(f'k = "{AWS_KEY_ID}"  # pragma: allowlist secret\n') == []


def test_findings_never_show_the_value():
    findings = scan_text(f'AWS = "{AWS_KEY_ID}"\n{PEM}\nt = "{GITHUB}"\nb = "{B64}"\n')
    assert len(findings) == 4
    for f in findings:
        for rendered in (str(f), repr(f), json.dumps(f.to_dict()), json.dumps(f, default=str),
                         str([f]), f"{f!r}"):
            assert f._value not in rendered and f._value[:12] not in rendered
        assert f.digest == marker_digest(f._value) and f.marker == f"[redacted:{f.digest}]"
        assert set(f.to_dict()) == {"type", "location", "line", "sha256"}
        with pytest.raises(TypeError):
            pickle.dumps(f)
        assert copy.deepcopy([f])[0] == f
    assert isinstance(findings[0], SecretFinding) and not hasattr(findings[0], "__dict__")


def test_scan_notebook_sources_outputs_and_metadata_skipping_images():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f'key = "{AWS_KEY_ID}"'),
        nbformat.v4.new_code_cell("print(token)", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=f"token is {GITHUB}\n"),
            nbformat.v4.new_output("display_data", data={"image/png": B64 * 20, "text/plain": "<Figure>"}),
        ]),
        nbformat.v4.new_code_cell("1/0", outputs=[nbformat.v4.new_output(
            "error", ename="ValueError", evalue=f"bad key {AWS_SECRET}", traceback=["Traceback", "ValueError"])]),
    ]
    nb.metadata["deploy"] = {"auth": f"Bearer {B64}"}
    findings = scan_notebook(nb, name="nb.ipynb")
    by_value = {f._value: f.location for f in findings}
    assert by_value[AWS_KEY_ID] == "nb.ipynb:cell[0].source"
    assert by_value[GITHUB] == "nb.ipynb:cell[1].outputs[0]"
    assert by_value[AWS_SECRET] == "nb.ipynb:cell[2].outputs[0]"
    assert by_value[B64] == "nb.ipynb:metadata"  # the image/png output (B64 repeated) was not scanned
    assert not any("outputs[1]" in loc for loc in by_value.values())
    as_json = nbformat.writes(nb)
    assert values(scan_notebook(as_json)) == values(findings)


def test_scan_file_binary_missing_and_notebook(tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2" + AWS_KEY_ID.encode())
    assert scan_file(tmp_path / "blob.bin") == []
    with pytest.raises(DirEngError, match="cannot read"):
        scan_file(tmp_path / "missing.txt")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f'k = "{AWS_KEY_ID}"')])
    nbformat.write(nb, tmp_path / "n.ipynb")
    (finding,) = scan_file(tmp_path / "n.ipynb")
    assert finding.location.endswith("n.ipynb:cell[0].source")


def test_a_key_at_the_end_of_a_few_hundred_kb_is_found():
    """(How fast: benchmarks/safety_bench.py.)"""
    source = "".join(p.read_text() for p in sorted((REPO / "direng_kernel").rglob("*.py")))
    text = (source * 2)[:400_000] + f'\nAWS = "{AWS_KEY_ID}"\n'
    findings = scan_text(text, "big.py")
    assert AWS_KEY_ID in values(findings)
    last_line = text.count("\n")  # the key's line, counted from 1
    assert [f.line for f in findings if f._value == AWS_KEY_ID] == [last_line]


# ============================================================================ vault

def test_vault_round_trip_list_delete(isolated):
    v = Vault()
    v.set("OPENAI_API_KEY", "sk-test-value-1234567890")
    v.set("db.password", "correct horse battery staple")
    assert v.get("OPENAI_API_KEY") == "sk-test-value-1234567890"
    assert v.list() == ["OPENAI_API_KEY", "db.password"]
    assert "db.password" in v and "nope" not in v
    v.set("db.password", "rotated-value-0987")
    assert Vault().get("db.password") == "rotated-value-0987"  # a fresh instance reads the file
    v.delete("db.password")
    assert v.list() == ["OPENAI_API_KEY"]
    with pytest.raises(SecretNotFoundError, match="no secret named 'db.password'"):
        v.get("db.password")
    with pytest.raises(NotFoundError):
        v.delete("db.password")
    assert v.values() == {"OPENAI_API_KEY": "sk-test-value-1234567890"}


def test_vault_file_is_not_plaintext_and_key_is_private(isolated):
    value = "plaintext-canary-VALUE-42"
    Vault().set("CANARY_NAME", value)
    enc = isolated / "vault.json.enc"
    key = isolated / "vault.key"
    data = enc.read_bytes()
    assert value.encode() not in data and b"CANARY_NAME" not in data
    assert base64.b64encode(value.encode()) not in data
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(enc.stat().st_mode) == 0o600
    assert stat.S_IMODE(isolated.stat().st_mode) == 0o700
    assert key.read_bytes().strip() not in data
    assert not [p for p in isolated.iterdir() if p.name.endswith(".tmp")]  # no leftovers


def test_vault_file_elsewhere_keeps_the_key_in_the_user_dir(isolated, tmp_path):
    store = tmp_path / "project" / ".direng"
    store.mkdir(parents=True)
    v = Vault(store)
    v.set("TOKEN", "project-scoped-secret-1")
    assert (store / "vault.json.enc").exists()
    assert not (store / "vault.key").exists() and (isolated / "vault.key").exists()
    assert Vault(store / "vault.json.enc").get("TOKEN") == "project-scoped-secret-1"


def test_wrong_key_is_a_clear_error_and_loses_nothing(isolated):
    from cryptography.fernet import Fernet

    Vault().set("A", "value-a-123456")
    enc = isolated / "vault.json.enc"
    before = enc.read_bytes()
    key = isolated / "vault.key"
    key.write_bytes(Fernet.generate_key() + b"\n")
    for call in (lambda: Vault().get("A"), lambda: Vault().set("B", "value-b-123456"),
                 lambda: Vault().list(), lambda: Vault().delete("A")):
        with pytest.raises(VaultError) as exc:
            call()
        message = str(exc.value)
        assert "wrong key or corrupt file" in message and "\n" not in message
        assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert enc.read_bytes() == before


def test_corrupt_file_missing_key_and_exposed_key(isolated):
    Vault().set("A", "value-a-123456")
    enc, key = isolated / "vault.json.enc", isolated / "vault.key"
    good = enc.read_bytes()
    enc.write_bytes(b"this is not a fernet token")
    with pytest.raises(VaultError, match="wrong key or corrupt file"):
        Vault().get("A")
    enc.write_bytes(good)
    key.chmod(0o644)
    with pytest.raises(VaultError, match="accessible by other users"):
        Vault().get("A")
    key.chmod(0o600)
    key_bytes = key.read_bytes()
    key.unlink()
    with pytest.raises(VaultError, match="key .* is missing"):
        Vault().set("B", "value-b-123456")
    assert enc.read_bytes() == good  # no new key was made over the old vault
    key.write_bytes(key_bytes)
    key.chmod(0o600)
    assert Vault().get("A") == "value-a-123456"


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a/b", "-x", "x:y", "ä", "a\nb", ".hidden"])
def test_invalid_names(name):
    with pytest.raises(VaultError, match="invalid secret name"):
        Vault().set(name, "value-123456")
    with pytest.raises(VaultError, match="invalid secret name"):
        Vault().get(name)


def test_empty_value_is_refused():
    with pytest.raises(VaultError, match="non-empty"):
        Vault().set("A", "")


def test_every_get_is_audited_and_the_log_never_holds_the_value(isolated):
    v = Vault()
    v.set("GH_TOKEN", GITHUB)
    v.get("GH_TOKEN", actor="lane:narrative")
    with pytest.raises(SecretNotFoundError):
        v.get("MISSING", actor="lane:narrative")
    records = read_records()
    access = [r for r in records if r["event"] == "secret.access"]
    assert [(r["data"]["name"], r["data"]["ok"], r["actor"]) for r in access] == [
        ("GH_TOKEN", True, "lane:narrative"), ("MISSING", False, "lane:narrative")]
    assert [r["event"] for r in records] == ["secret.set", "secret.access", "secret.access"]
    assert GITHUB.encode() not in (isolated / "audit.jsonl").read_bytes()
    assert verify().ok


def test_concurrent_setters_lose_nothing(isolated):
    code = textwrap.dedent("""
        import sys
        from direng_kernel.security.vault import Vault
        w = sys.argv[1]
        for i in range(8):
            Vault().set(f"W{w}_{i}", f"value-{w}-{i}-xxxxxxxx")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(w)], cwd=REPO) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    v = Vault()
    assert len(v.list()) == 32
    assert v.get("W3_7") == "value-3-7-xxxxxxxx"
    assert verify().ok and verify().records == 32 + 1


# ============================================================================ redaction

def test_markers_named_and_detected_are_stable(isolated):
    Vault().set("API_TOKEN", "vault-secret-value-77")
    r = Redactor(vault=Vault())
    marker = r.add_value(AWS_KEY_ID)
    assert marker == f"[redacted:{marker_digest(AWS_KEY_ID)}]" == scan_text(f'"{AWS_KEY_ID}"')[0].marker
    out = r.redact(f"a vault-secret-value-77 b {AWS_KEY_ID} c {AWS_KEY_ID}")
    assert out == f"a [secret:API_TOKEN] b {marker} c {marker}"
    other = Redactor()
    other.add_value(AWS_KEY_ID)
    assert other.redact(AWS_KEY_ID) == marker  # same value, same marker, any redactor
    assert r.redact("nothing to hide") == "nothing to hide"


def test_longest_value_wins_and_short_values_are_ignored():
    r = Redactor()
    r.add_secret("SHORT", "abcdefgh")
    r.add_secret("LONG", "abcdefgh-ijkl")
    r.add_secret("TINY", "abc")
    assert r.redact("x abcdefgh-ijkl y abcdefgh z abc") == "x [secret:LONG] y [secret:SHORT] z abc"


def test_json_escaped_and_double_escaped_forms():
    value = 'p@ss"wo\\rd/üñí\n2'
    r = Redactor()
    r.add_secret("PW", value)
    once = json.dumps({"cmd": f"login --password {value}"})
    twice = json.dumps({"payload": once})
    ascii_once = json.dumps({"v": value}, ensure_ascii=True)
    for text in (once, twice, ascii_once, json.dumps({"v": value}, ensure_ascii=False), repr(value)):
        out = r.redact(text)
        assert "[secret:PW]" in out
        assert value not in out and json.dumps(value)[1:-1] not in out and "wo\\\\rd" not in out
    assert json.loads(r.redact(once)) == {"cmd": "login --password [secret:PW]"}  # still valid JSON


def test_base64_forms_at_every_alignment():
    value = "Zx9-very-secret-token-Q"
    r = Redactor()
    r.add_secret("TOK", value)
    for prefix in (b"", b"u", b"us", b"user:", b"Authorization: Basic "):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            blob = enc(prefix + value.encode() + b"!trailer").decode()
            out = r.redact(f"header {blob} end")
            assert "[secret:TOK]" in out, (prefix, enc)
            leftover = out.replace("[secret:TOK]", "")
            # what is left cannot be decoded back into the value
            assert value not in leftover and value.encode() not in _try_b64(leftover)
    assert r.redact(base64.b64encode(value.encode()).decode()) == "[secret:TOK]"


def _try_b64(text: str) -> bytes:
    out = b""
    for word in text.split():
        for dec in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                out += dec(word + "===")
            except Exception:  # noqa: BLE001
                pass
    return out


def test_url_and_html_encoded_forms():
    value = "a&b<c> d/e+f=g"
    r = Redactor()
    r.add_secret("X", value)
    from html import escape
    from urllib.parse import quote

    for text in (f"?p={quote(value, safe='')}", f"<td>{escape(value)}</td>"):
        assert r.redact(text).count("[secret:X]") == 1


def test_redact_obj_walks_structures():
    r = Redactor()
    r.add_secret("K", "hidden-value-1")
    obj = {"a": ["x hidden-value-1", ("hidden-value-1", 3)], "hidden-value-1": {"n": 1.5, "b": None}}
    assert r.redact_obj(obj) == {"a": ["x [secret:K]", ("[secret:K]", 3)], "[secret:K]": {"n": 1.5, "b": None}}
    assert obj["a"][0] == "x hidden-value-1"  # the input is untouched


def test_redact_scan_learns_detected_values():
    r = Redactor(detector=secret_detection)
    out = r.redact(f'cfg = "{GITHUB}"', scan=True)
    assert GITHUB not in out and f"[redacted:{marker_digest(GITHUB)}]" in out
    assert r.redact(f"later {GITHUB}") == f"later [redacted:{marker_digest(GITHUB)}]"


def test_redact_notebook_sources_outputs_metadata(isolated):
    secret = "nb-secret-VALUE-123"
    Vault().set("NB_SECRET", secret)
    r = Redactor(vault=Vault(), detector=secret_detection)
    png = base64.b64encode(bytes(range(256)) * 4).decode()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(source=["x = 'nb-secret-", "VALUE-123'\n", "print(x)"]),
        nbformat.v4.new_code_cell("print(x)", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=[f"got {secret}\n"]),
            nbformat.v4.new_output("execute_result", execution_count=1,
                                   data={"text/plain": [f"'{secret}'"], "application/json": {"k": secret},
                                         "image/png": png}),
            nbformat.v4.new_output("error", ename="KeyError", evalue=secret, traceback=[f"KeyError: {secret}"]),
        ]),
        nbformat.v4.new_markdown_cell(f"the token `{GITHUB}` was pasted here"),
    ]
    nb.cells[0].metadata["note"] = secret
    nb.metadata["papermill"] = {"parameters": {"token": secret}}
    original = nbformat.writes(nb)
    out = r.redact_notebook(nb)
    text = nbformat.writes(out)
    assert secret not in text and GITHUB not in text and json.dumps(secret)[1:-1] not in text
    assert text.count("[secret:NB_SECRET]") == 8
    assert f"[redacted:{marker_digest(GITHUB)}]" in text  # detected, nobody registered it
    assert out.cells[1].outputs[1].data["image/png"] == png
    assert isinstance(out, nbformat.NotebookNode) and nbformat.writes(nb) == original  # a copy
    nbformat.validate(out)
    assert "[secret:NB_SECRET]" in "".join(out.cells[0].source)


def test_logging_filter_redacts_message_args_and_exceptions():
    r = Redactor()
    r.add_secret("DB_PASS", "hunter2-db-password")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(r))
    log = logging.getLogger("test_secrets.redacting")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.info("connecting with %s to %s", "hunter2-db-password", "db")
        log.warning({"password": "hunter2-db-password"})
        try:
            raise RuntimeError("login failed for hunter2-db-password")
        except RuntimeError:
            log.exception("boom")
        log.info("plain %d", 3)
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert "hunter2-db-password" not in output
    assert "connecting with [secret:DB_PASS] to db" in output
    assert "RuntimeError: login failed for [secret:DB_PASS]" in output and "plain 3" in output


def test_global_redactor_knows_vault_env_and_registered_values(isolated, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_TOKEN", "env-token-value-xyz")
    monkeypatch.setenv("HOME_DIR_KEY_PATH", "/not/a/secret")
    Vault().set("FROM_VAULT", "vault-value-abc-123")
    reset_global_redactor()
    r = global_redactor()
    assert global_redactor() is r
    out = r.redact("vault-value-abc-123 env-token-value-xyz /not/a/secret")
    assert out == "[secret:FROM_VAULT] [secret:$MY_SERVICE_API_TOKEN] /not/a/secret"
    Vault().set("LATER", "set-after-start-456")   # this process: registered at once
    assert r.redact("set-after-start-456") == "[secret:LATER]"
    code = "from direng_kernel.security.vault import Vault; Vault().set('OTHER_PROC', 'from-another-process-9')"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    deadline = time.monotonic() + 5
    while r.redact("from-another-process-9") != "[secret:OTHER_PROC]" and time.monotonic() < deadline:
        time.sleep(0.2)  # the vault file is re-checked at most once a second
    assert r.redact("from-another-process-9") == "[secret:OTHER_PROC]"


def test_redaction_with_many_secrets_in_a_long_text():
    """(How fast: benchmarks/safety_bench.py.)"""
    r = Redactor()
    for i in range(200):
        r.add_secret(f"S{i}", f"secret-{i:04d}-{marker_digest(str(i))}")
    text = ("ordinary text with no secrets in it at all, just words and numbers 12345. " * 5000)
    assert r.redact(text) == text
    assert r.redact(text + " secret-0199-" + marker_digest("199")) == text + " [secret:S199]"
    middle = len(text) // 2
    mixed = text[:middle] + "secret-0000-" + marker_digest("0") + text[middle:]
    assert r.redact(mixed) == text[:middle] + "[secret:S0]" + text[middle:]


def test_values_learnt_one_by_one_are_all_redacted():
    """(How fast learning stays: benchmarks/safety_bench.py.)"""
    r = Redactor()
    learnt = []
    for i in range(600):  # what scrubbing chunk after chunk does: learn one, redact, repeat
        value = f"tok{i:04d}-{marker_digest(str(i))}{marker_digest(str(-i))}"
        learnt.append(value)
        r.add_value(value)
        assert r.redact(f"chunk {value} end") == f"chunk [redacted:{marker_digest(value)}] end"
    out = r.redact(" | ".join(learnt))
    assert not any(v in out for v in learnt) and out.count("[redacted:") == 600
    nested = learnt[7][:20]  # a value inside an already compiled one: both still redacted right
    r.add_value(nested)
    assert r.redact(learnt[7]) == f"[redacted:{marker_digest(learnt[7])}]"
    assert r.redact(nested + "!") == f"[redacted:{marker_digest(nested)}]!"


printable = st.characters(min_codepoint=32, max_codepoint=126)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(printable, min_size=8, max_size=40),
       before=st.text(printable, max_size=60), after=st.text(printable, max_size=60),
       named=st.booleans(), times=st.integers(1, 3))
def test_property_redacted_text_never_contains_the_value(value, before, after, named, times):
    r = Redactor()
    if named:
        r.add_secret("API_KEY", value)
    else:
        r.add_value(value)
    text = before + (value + after) * times
    out = r.redact(text)
    assert value not in out
    escaped = json.dumps({"t": text})
    out = r.redact(escaped)
    assert value not in out and json.dumps(value)[1:-1] not in out


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.text(printable, min_size=8, max_size=24), min_size=2, max_size=60, unique=True),
       glue=st.text(printable, max_size=5), interleave=st.booleans())
def test_property_several_values_none_survive(values, glue, interleave):
    r = Redactor()
    for i, v in enumerate(values):
        if i % 2:
            r.add_secret(f"S{i}", v)
        else:
            r.add_value(v)
        if interleave:
            r.redact(v)  # compile as they come: values end up in different tiers
    out = r.redact(glue.join(values + values[::-1]))
    for v in values:
        assert v not in out


# ============================================================================ CLI

def _parse(*argv):
    from direng_kernel.cli import secrets_cmd

    parser = argparse.ArgumentParser(prog="direng")
    sub = parser.add_subparsers(dest="command")
    secrets_cmd.add_parser(sub)
    return secrets_cmd, parser.parse_args(["secrets", *argv])


def test_cli_set_get_list_delete(capsys, monkeypatch):
    cmd, args = _parse("set", "API_KEY", "--value", "cli-value-123456")
    assert cmd.run(args) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin-value-789\n"))
    assert cmd.run(_parse("set", "OTHER")[1]) == 0
    capsys.readouterr()
    assert cmd.run(_parse("get", "OTHER")[1]) == 0
    assert capsys.readouterr().out == "from-stdin-value-789\n"
    assert cmd.run(_parse("list")[1]) == 0
    assert capsys.readouterr().out == "API_KEY\nOTHER\n"
    assert cmd.run(_parse("list", "--json")[1]) == 0
    assert json.loads(capsys.readouterr().out) == ["API_KEY", "OTHER"]
    assert cmd.run(_parse("delete", "API_KEY")[1]) == 0
    assert capsys.readouterr().err == "ok: deleted secret API_KEY\n"
    assert cmd.run(_parse("get", "API_KEY")[1]) == 1
    err = capsys.readouterr().err
    assert err.startswith("direng: error: no secret named 'API_KEY'") and err.count("\n") == 1
    assert cmd.run(_parse("set", "bad name", "--value", "x-123456")[1]) == 1
    assert "invalid secret name" in capsys.readouterr().err
    assert [r["actor"] for r in read_records() if r["event"] == "secret.access"] == ["cli", "cli"]


def test_cli_scan(tmp_path, capsys):
    (tmp_path / "ok.py").write_text(ORDINARY)
    (tmp_path / "bad.py").write_text(f'GH = "{GITHUB}"\n')
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(f'token = "{GITHUB}"\n')
    cmd, args = _parse("scan", str(tmp_path))
    assert cmd.run(args) == 1
    out = capsys.readouterr().out
    assert "bad.py:1: GitHub Token (sha256:" in out and GITHUB not in out and ".git" not in out
    assert cmd.run(_parse("scan", "--json", str(tmp_path / "bad.py"))[1]) == 1
    assert json.loads(capsys.readouterr().out)[0]["sha256"] == digest(GITHUB)
    assert cmd.run(_parse("scan", str(tmp_path / "ok.py"))[1]) == 0
    assert cmd.run(_parse("scan", str(tmp_path / "nope"))[1]) == 1
    assert "no such file" in capsys.readouterr().err


def test_cli_set_reads_a_real_stdin_pipe(isolated):
    driver = ("import sys, argparse; from direng_kernel.cli import secrets_cmd as c; p = argparse.ArgumentParser();"
              "s = p.add_subparsers(dest='command'); c.add_parser(s); sys.exit(c.run(p.parse_args(sys.argv[1:])))")
    env = {**os.environ}
    done = subprocess.run([sys.executable, "-c", driver, "secrets", "set", "PIPED"], input="piped-value-321\n",
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "piped-value-321" not in done.stdout + done.stderr
    assert Vault().get("PIPED") == "piped-value-321"


def test_a_redactor_without_a_detector_refuses_to_scan_and_redacts_notebooks_by_known_values():
    r = Redactor()
    r.add_secret("K", "known-value-1234")
    with pytest.raises(ValueError, match="detector"):
        r.redact(f'cfg = "{GITHUB}"', scan=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"a = 'known-value-1234'; b = '{GITHUB}'")]
    out = r.redact_notebook(nb)
    assert "[secret:K]" in out.cells[0].source and GITHUB in out.cells[0].source  # known values only
    assert GITHUB not in global_redactor().redact_notebook(nb).cells[0].source  # the global one detects
