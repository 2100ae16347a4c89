"""The hash-chained audit log and `direng audit verify`.

Real files, real flock(2) between real processes; the log lives in a per-test file
(DIRENG_AUDIT_LOG) and the vault directory too (the global redactor reads it).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from direng_kernel.errors import DirEngError
from direng_kernel.security import audit
from direng_kernel.security.audit import GENESIS, AuditError, read_records, record, verify
from direng_kernel.security.scrub import reset_global_redactor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def log_path(tmp_path, monkeypatch):
    path = tmp_path / "audit" / "audit.jsonl"
    monkeypatch.setenv("DIRENG_AUDIT_LOG", str(path))
    monkeypatch.setenv("DIRENG_VAULT_DIR", str(tmp_path / "vault"))
    reset_global_redactor()
    yield path
    reset_global_redactor()


def write_log(n: int) -> list[dict]:
    events = ["token.issue", "secret.access", "policy.change", "command.denied", "replay"]
    return [record(events[i % len(events)], actor=f"user{i % 3}", i=i, note=f"record {i}", nested={"k": [i, "x"]})
            for i in range(n)]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def canonical(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ============================================================================ format and chain

def test_records_form_a_hash_chain(log_path):
    recs = write_log(5)
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    assert recs[0]["prev"] == GENESIS == "0" * 64
    for a, b in zip(recs, recs[1:]):
        assert b["prev"] == a["hash"]
    on_disk = [json.loads(line) for line in lines(log_path)]
    assert on_disk == recs
    for rec in on_disk:
        assert set(rec) == {"seq", "at", "event", "actor", "data", "prev", "hash"}
        body = {k: v for k, v in rec.items() if k != "hash"}
        assert rec["hash"] == hashlib.sha256(canonical(body).encode()).hexdigest()
        assert rec["at"].endswith("Z")
    assert all(line.decode().rstrip("\n") == canonical(json.loads(line)) for line in lines(log_path))
    report = verify()
    assert report.ok and report.records == 5 and report.head == recs[-1]["hash"] and report.first_bad_seq is None
    assert str(report).startswith(f"ok: {log_path}: 5 records, chain intact")
    assert oct(log_path.stat().st_mode & 0o777) == "0o600"


def test_missing_and_empty_logs_verify(log_path):
    report = verify()
    assert report.ok and report.records == 0 and not report.exists
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(b"")
    assert verify().ok and verify().exists


def test_default_actor_and_non_json_data(log_path):
    rec = record("replay", run=Path("/tmp/run-1"), when=(1, 2), which={3})
    # a tuple is JSON's list; a path and a set (no JSON form) are str()-ed, as documented
    assert rec["data"] == {"run": "/tmp/run-1", "when": [1, 2], "which": "{3}"}
    assert rec["actor"] == getpass.getuser()
    assert json.loads(lines(log_path)[-1])["data"] == rec["data"] and verify().ok
    with pytest.raises(AuditError, match="invalid audit event name"):
        record("Not An Event")
    assert issubclass(AuditError, DirEngError)


def test_data_and_actor_are_redacted_before_hashing(log_path):
    from direng_kernel.security.vault import Vault

    Vault().set("PROVIDER_KEY", "prov-secret-value-1234")
    github = "ghp_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
    rec = record("command.denied", actor="prov-secret-value-1234",
                 command=f"curl -H 'Authorization: token {github}' https://api.github.com",
                 env={"KEY": "prov-secret-value-1234"})
    raw = log_path.read_bytes()
    assert b"prov-secret-value-1234" not in raw and github.encode() not in raw
    assert rec["actor"] == "[secret:PROVIDER_KEY]" and rec["data"]["env"] == {"KEY": "[secret:PROVIDER_KEY]"}
    assert "[redacted:" in rec["data"]["command"]
    assert verify().ok


# ============================================================================ tampering

def test_editing_a_field_is_detected(log_path):
    write_log(6)
    ls = lines(log_path)
    rec = json.loads(ls[3])
    rec["data"]["note"] = "innocent"
    ls[3] = (canonical(rec) + "\n").encode()
    log_path.write_bytes(b"".join(ls))
    report = verify()
    assert not report.ok and report.first_bad_seq == 4 and report.line == 4 and report.records == 3
    assert "edited" in report.reason


def test_editing_and_rehashing_is_caught_by_the_next_record(log_path):
    write_log(4)
    ls = lines(log_path)
    rec = json.loads(ls[1])
    rec["actor"] = "mallory"
    rec["hash"] = audit._hash(rec)
    ls[1] = (canonical(rec) + "\n").encode()
    log_path.write_bytes(b"".join(ls))
    report = verify()
    assert not report.ok and report.first_bad_seq == 3 and "does not chain" in report.reason


def test_deleting_a_record_is_detected(log_path):
    write_log(6)
    ls = lines(log_path)
    del ls[2]
    log_path.write_bytes(b"".join(ls))
    report = verify()
    assert not report.ok and report.first_bad_seq == 3 and "record 3 is missing (deleted)" in report.reason


def test_deleting_the_first_record_is_detected(log_path):
    write_log(3)
    log_path.write_bytes(b"".join(lines(log_path)[1:]))
    report = verify()
    assert not report.ok and report.first_bad_seq == 1 and "missing" in report.reason


def test_swapping_two_records_is_detected(log_path):
    write_log(7)
    ls = lines(log_path)
    ls[2], ls[5] = ls[5], ls[2]
    log_path.write_bytes(b"".join(ls))
    report = verify()
    assert not report.ok and report.first_bad_seq == 3 and "out of order" in report.reason
    assert "found seq 6, expected 3" in report.reason


def test_truncating_the_last_line_is_detected(log_path):
    write_log(5)
    data = log_path.read_bytes()
    log_path.write_bytes(data[:-25])
    report = verify()
    assert not report.ok and report.first_bad_seq == 5 and report.line == 5 and report.records == 4
    assert "truncated last line" in report.reason


def test_writing_after_a_truncated_tail_keeps_the_damage_visible(log_path):
    write_log(3)
    log_path.write_bytes(log_path.read_bytes()[:-10])
    rec = record("replay", run="r1")
    assert rec["seq"] == 3 and rec["prev"] == json.loads(lines(log_path)[1])["hash"]
    report = verify()
    assert not report.ok and report.first_bad_seq == 3 and report.line == 3
    assert "not a valid audit record" in report.reason


def test_an_empty_line_or_garbage_inside_is_detected(log_path):
    write_log(3)
    ls = lines(log_path)
    log_path.write_bytes(ls[0] + b"\n" + b"".join(ls[1:]))
    assert verify().first_bad_seq == 2 and "empty line" in verify().reason
    log_path.write_bytes(ls[0] + b"{not json}\n" + b"".join(ls[1:]))
    assert verify().first_bad_seq == 2 and "not a valid audit record" in verify().reason


FIELDS = ["seq", "at", "event", "actor", "data", "prev", "hash"]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
                           max_leaves=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 8), data=st.data())
def test_property_any_edit_to_any_record_is_detected_at_that_record(monkeypatch, n, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.jsonl"
        monkeypatch.setenv("DIRENG_AUDIT_LOG", str(path))
        write_log(n)
        ls = lines(path)
        k = data.draw(st.integers(0, n - 1), label="record index")
        if data.draw(st.booleans(), label="field edit (else a byte edit)"):
            rec = json.loads(ls[k])
            field = data.draw(st.sampled_from(FIELDS), label="field")
            new = data.draw(json_values.filter(lambda v: v != rec[field] or type(v) is not type(rec[field])),
                            label="new value")
            rec[field] = new
            pretty = data.draw(st.booleans(), label="non-canonical")
            ls[k] = ((json.dumps(rec) if pretty else canonical(rec)) + "\n").encode()
        else:
            line = ls[k]
            pos = data.draw(st.integers(0, len(line) - 2), label="byte position")
            byte = data.draw(st.integers(32, 126).filter(lambda b: b != line[pos]), label="byte")
            ls[k] = line[:pos] + bytes([byte]) + line[pos + 1:]
        path.write_bytes(b"".join(ls))
        report = verify(path)
        assert not report.ok
        assert report.first_bad_seq == k + 1 and report.line == k + 1 and report.records == k


# ============================================================================ concurrency

def test_four_processes_fifty_records_each_make_one_valid_chain(log_path):
    code = textwrap.dedent("""
        import sys
        from direng_kernel.security.audit import record
        w = int(sys.argv[1])
        for i in range(50):
            record("replay", actor=f"writer{w}", writer=w, i=i)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(w)], cwd=REPO, env=os.environ.copy())
             for w in range(4)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0, 0, 0]
    report = verify()
    assert report.ok, report
    assert report.records == 200
    recs = read_records()
    assert [r["seq"] for r in recs] == list(range(1, 201))
    for w in range(4):
        mine = [r["data"]["i"] for r in recs if r["data"]["writer"] == w]
        assert mine == list(range(50))  # each writer's records, all present, in its own order
    assert len(lines(log_path)) == 200


# ============================================================================ CLI

def _run(*argv):
    from direng_kernel.cli import audit_cmd

    parser = argparse.ArgumentParser(prog="direng")
    sub = parser.add_subparsers(dest="command")
    audit_cmd.add_parser(sub)
    return audit_cmd.run(parser.parse_args(["audit", *argv]))


def test_cli_verify_ok_broken_json_and_missing(log_path, capsys, tmp_path):
    write_log(4)
    assert _run("verify") == 0
    assert capsys.readouterr().out.startswith(f"ok: {log_path}: 4 records, chain intact")
    assert _run("verify", "--json") == 0
    assert json.loads(capsys.readouterr().out)["records"] == 4
    ls = lines(log_path)
    ls[1], ls[2] = ls[2], ls[1]
    broken = tmp_path / "copy.jsonl"
    broken.write_bytes(b"".join(ls))
    assert _run("verify", "--log", str(broken)) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"broken: {broken}: record seq 2 (line 2): records out of order") and out.count("\n") == 1
    assert _run("verify", "--log", str(broken), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_bad_seq"] == 2
    assert _run("verify", "--log", str(tmp_path / "nope.jsonl")) == 1
    assert capsys.readouterr().err == f"direng: error: no audit log at {tmp_path / 'nope.jsonl'}\n"
    log_path.unlink()
    assert _run("verify") == 0
    assert "no audit log" in capsys.readouterr().out
