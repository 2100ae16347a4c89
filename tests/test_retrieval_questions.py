"""The retrieval evaluation's question set (`benchmarks/eval/questions.json`) and its scoring.

The file's shape, the metric rules (a whole-file gold, callers@10) and the syntactic caller scan
used by `retrieval_eval.py --check-gold` are checked here on the file and on small sources the
tests write; the tests never fetch a corpus, never index, and never run the benchmark.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import corpora  # noqa: E402
import retrieval_eval  # noqa: E402


@pytest.fixture(scope="module")
def questions():
    return retrieval_eval.load_questions()


def test_the_set_has_150_or_more_questions_over_four_languages(questions):
    assert len(questions) >= 150
    assert len({q["id"] for q in questions}) == len(questions)
    langs = Counter(q["lang"] for q in questions)
    assert set(langs) == set(retrieval_eval.LANGS) and min(langs.values()) >= 20, langs
    kinds = Counter(q["kind"] for q in questions)
    assert set(kinds) <= set(retrieval_eval.KINDS)
    assert kinds["relation"] >= 20 and kinds["file"] >= 10 and kinds["type"] >= 15, kinds
    for lang in ("typescript", "go", "rust"):  # every new language has every kind of question
        assert {q["kind"] for q in questions if q["lang"] == lang} >= {"relation", "file", "type"}, lang


def test_every_question_is_well_formed(questions):
    for q in questions:
        corpus = corpora.CORPORA[q["corpus"]]
        assert corpus.purpose == "eval" and corpus.lang == q["lang"], q["id"]
        assert q["question"].strip() and q["gold"], q["id"]
        for g in [*q["gold"], *([q["target"]] if "target" in q else [])]:
            assert g["path"] == g["path"].strip("/") and "\\" not in g["path"], q["id"]
        if q["kind"] == "file":
            assert all(g.get("symbol") is None for g in q["gold"]), q["id"]
        else:
            assert all(g.get("symbol") for g in q["gold"]), q["id"]
        assert ("target" in q) == (q["kind"] == "relation"), q["id"]


def test_relation_questions_are_worded_in_more_than_one_way(questions):
    lead = {" ".join(q["question"].lower().split()[:2]) for q in questions if q["kind"] == "relation"}
    assert len(lead) >= 5, lead


def test_corpora_are_pinned_to_exact_versions():
    for name in corpora.EVAL_CORPORA:
        c = corpora.CORPORA[name]
        assert c.registry in ("pypi", "npm", "deb") and c.version[0].isdigit(), name
        assert c.version in c.pin and c.root.parent == corpora.CORPORA_DIR
        if c.registry == "deb":
            assert c.subdir and c.pin == f"{c.package}={c.version}"
    assert {corpora.CORPORA[n].lang for n in corpora.EVAL_CORPORA} == set(retrieval_eval.LANGS)


def test_a_file_question_is_hit_by_any_hit_in_the_file():
    q = {"kind": "file", "gold": [{"path": "src/errors.ts", "symbol": None}]}
    hits = [{"path": "src/a.ts", "symbol": "x"}, {"path": "src/errors.ts", "symbol": "die"}]
    s = retrieval_eval.score_search(hits, q)
    assert (s["file@1"], s["file@5"], s["sym@5"], s["mrr"]) == (0.0, 1.0, 1.0, 0.5)


def test_symbols_match_exactly_and_relation_questions_get_callers_at_10():
    q = {"kind": "relation", "gold": [{"path": "a.go", "symbol": "T.run"}, {"path": "b.go", "symbol": "main"}]}
    hits = [{"path": "a.go", "symbol": "T"}, {"path": "b.go", "symbol": "main"}]
    s = retrieval_eval.score_search(hits, q)
    assert (s["file@1"], s["sym@5"], s["mrr"], s["callers@10"]) == (1.0, 1.0, 0.5, 0.5)
    legacy = {"type": "callers", "gold": q["gold"]}  # version 1 of the file
    assert retrieval_eval.score_search(hits, legacy)["callers@10"] == 0.5


def test_the_caller_scan_skips_comments_strings_and_definitions(tmp_path):
    (tmp_path / "lib.rs").write_text(
        "/// calls `helper(x)` in docs\n"
        "fn helper(x: u8) -> u8 { x }\n"
        "impl Thing {\n"
        "    fn run<'a>(&'a self) -> u8 {\n"
        "        let q = b'\"'; // helper( in a comment\n"
        "        let s = \"helper(\";\n"
        "        helper(1) + Self::helper2(2)\n"
        "    }\n"
        "}\n"
        "fn other() { let _ = helper (3); }\n")
    found = retrieval_eval._scan_callers(tmp_path, "helper", "", "rust", {})
    assert found == {("lib.rs", "Thing.run"), ("lib.rs", "other")}
    (tmp_path / "a.ts").write_text(
        "export class Box {\n"
        "    notify() {\n"
        "        const t = `notify(${1})`\n"
        "        return 1\n"
        "    }\n"
        "    set(v) { this.notify() }\n"
        "}\n")
    assert retrieval_eval._scan_callers(tmp_path, "notify", "", "typescript", {}) == {("a.ts", "Box.set")}
