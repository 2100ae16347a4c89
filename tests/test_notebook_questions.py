"""The notebook evaluation's question set (`benchmarks/eval/notebook_questions.json`).

Its shape is checked always (the file only). Its gold answers are checked against the pinned
corpus (python-control 0.10.1) only where a benchmark run has already fetched it into
`benchmarks/.cache`: the tests never touch the network, and never run the benchmark.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import corpora  # noqa: E402
import notebook_eval  # noqa: E402


def test_the_question_file_has_twenty_or_more_questions_of_the_three_kinds():
    data = notebook_eval.load_questions()
    assert data["corpus"] == corpora.NOTEBOOK_CORPUS and data["corpus"] in corpora.CORPORA
    kinds = [q["type"] for q in data["questions"]]
    assert len(kinds) >= 20 and {k: kinds.count(k) >= 5 for k in notebook_eval.KINDS} == dict.fromkeys(
        notebook_eval.KINDS, True)
    for q in data["questions"]:
        paths = [g if isinstance(g, str) else g["path"] for g in q["gold"]] + ([q["path"]] if "path" in q else [])
        assert all(p == p.strip("/") and "\\" not in p for p in paths), q["id"]
        if q["type"] == "calls":
            assert q["path"].endswith(".ipynb") and not any(g["path"].endswith(".ipynb") for g in q["gold"])
        else:
            assert all(p.endswith(".ipynb") for p in paths), q["id"]


@pytest.mark.parametrize("question,needle", [
    ({"type": "where", "question": "x", "gold": [{"path": "a.ipynb"}]}, "nb-1: a `where` gold"),
    ({"type": "uses", "question": "x", "gold": ["a.ipynb"]}, "nb-1: a `uses` question has a `function`"),
    ({"type": "guess", "question": "x", "gold": ["a"]}, "nb-1: `type` must be one of"),
    ({"type": "calls", "question": "x", "gold": []}, "nb-1: `gold` must be a non-empty list"),
])
def test_a_malformed_question_is_named(tmp_path, question, needle):
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"corpus": "control", "questions": [{"id": "nb-1", **question}]}))
    with pytest.raises(ValueError, match=needle.replace("`", ".").replace("(", r"\(")):
        notebook_eval.load_questions(path)


CONTROL = corpora.CORPORA[corpora.NOTEBOOK_CORPUS]


@pytest.mark.slow
def test_every_gold_answer_holds_in_the_corpus(tmp_path, monkeypatch):
    """The pinned sdist is fetched from PyPI (9.5 MB) into this test's own folder — never a warm
    cache — and every gold path, cell and symbol is checked against it."""
    monkeypatch.setattr(corpora, "CORPORA_DIR", tmp_path / "corpora")
    monkeypatch.setattr(corpora, "DOWNLOAD_DIR", tmp_path / "downloads")
    problems = notebook_eval.check_gold(notebook_eval.load_questions(), corpora.fetch(CONTROL.name))
    assert problems == []
