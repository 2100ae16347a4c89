"""The query-time MiniLM rerank of a warm process's hybrid search (index/rerank.py).

A small repository indexed for real, searched with the real packaged encoder: a question
worded unlike the code it asks for ("for good" / "irreversibly") is lifted to the top by the
rerank, switched on with `DIRENG_RERANK=1`; without it (the default), with `dense=False` (a one-shot CLI), on a store whose MiniLM
vectors are filled, and for a relation question the answer is the search without it; an
encoder that cannot run leaves the search answering without it.
"""

from __future__ import annotations

import logging
import textwrap

import pytest

from conftest import commit_all, git
from direng_kernel.index import rerank
from direng_kernel.models import Chunk
from direng_kernel.workbench import Workbench

FILES = {
    "app/accounts.py": '''
        """User accounts."""


        def user_account_label(user):
            """The label shown for a user account."""
            return f"account of {user.name}"


        def user_account_created(user):
            """When the user account was created."""
            return user.created


        def user_account_is_active(user):
            """Whether a user account can sign in."""
            return user.active


        def erase_member_forever(member_id, db):
            """Wipe every trace of a member from the database, irreversibly."""
            db.execute("DELETE FROM members WHERE id=?", (member_id,))
            db.commit()


        def user_account_owner(user):
            """The person owning a user account."""
            return user.owner
        ''',
    "app/close.py": '''
        from app.accounts import erase_member_forever


        def close_membership(member, db):
            """Close a membership at the member's request."""
            erase_member_forever(member.id, db)
        ''',
}
QUESTION = "remove someone's account for good"


def _key(hits):
    return [(h.path, h.symbol, h.start_line, h.score) for h in hits]


@pytest.fixture()
def wb(tmp_path, monkeypatch):
    monkeypatch.setenv(rerank.ENV, "1")  # opt-in
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text).lstrip())
    commit_all(root, "init")
    rerank.CACHE.clear()
    w = Workbench(root)
    w.index()  # as shipped: no MiniLM vectors
    yield w
    w.close()


def _without_rerank(wb, query, **kw):
    wb.searcher.query_rerank = False
    try:
        return wb.search(query, **kw)
    finally:
        wb.searcher.query_rerank = True


def test_rerank_lifts_what_minilm_reads_as_the_answer(wb):
    shipped = _without_rerank(wb, QUESTION, k=10)
    warm = wb.search(QUESTION, k=10)
    assert shipped[0].symbol != "erase_member_forever"  # lexically "account" wins
    assert warm[0].symbol == "erase_member_forever"
    # the same symbols, one hit each: only the head's order changed, within its score range
    assert sorted((h.path, h.symbol or "") for h in warm) == sorted((h.path, h.symbol or "") for h in shipped)
    head = [h.score for h in shipped[: rerank.TOP_K]]
    assert all(min(head) - 1e-6 <= h.score <= max(head) + 1e-6 for h in warm[: rerank.TOP_K])
    assert warm == wb.search(QUESTION, k=10)  # cached candidate vectors: the same answer


def test_switched_off_or_one_shot_answers_as_before(wb, monkeypatch):
    baseline = _key(_without_rerank(wb, QUESTION))
    assert _key(wb.search(QUESTION, dense=False)) == baseline
    for value in ("0", "off", "No", "false", ""):
        monkeypatch.setenv(rerank.ENV, value)
        assert _key(wb.search(QUESTION)) == baseline
    monkeypatch.delenv(rerank.ENV)  # off unless asked for
    assert _key(wb.search(QUESTION)) == baseline
    monkeypatch.setenv(rerank.ENV, "1")
    assert _key(wb.search(QUESTION)) != baseline


def test_relation_question_is_left_to_the_graph(wb):
    question = "what calls erase_member_forever"
    hits = wb.search(question)
    assert [h.symbol for h in hits] == ["close_membership"] and hits[0].sources == ["graph"]
    assert _key(hits) == _key(_without_rerank(wb, question))


def test_encoder_unavailable_still_answers(wb, monkeypatch, caplog):
    monkeypatch.setenv("DIRENG_DENSE_ENCODER", "no-such-encoder")  # embed.EncoderUnavailable
    with caplog.at_level(logging.DEBUG, logger="direng_kernel.index.rerank"):
        hits = wb.search(QUESTION)
    assert _key(hits) == _key(_without_rerank(wb, QUESTION))
    assert any("without the MiniLM rerank" in r.getMessage() for r in caplog.records)


def test_filled_store_is_unchanged(wb):
    wb.fill_dense()
    assert wb.store.has_dense()
    for question in (QUESTION, "user account owner", "wipe a member from the database"):
        assert _key(wb.search(question)) == _key(_without_rerank(wb, question))


def test_reranked_symbol_is_not_overridden_by_its_other_parts():
    """Scores and chunks as `Searcher.search` holds them: the head re-fused with its cosine
    ranking, its own scores handed out in the new order, the tail below it untouched, and a
    weaker part of a head symbol dropped so it cannot stand in."""
    def chunk(cid, symbol, text):
        return Chunk(id=cid, path="m.py", symbol=symbol, kind="function", start_line=1, end_line=2, text=text)

    chunks = {
        "a": chunk("a", "parse_config", "def parse_config(path):\n    \"\"\"Read settings from a TOML file.\"\"\""),
        "a2": chunk("a2", "parse_config", "    return toml.load(open(path))"),
        "b": chunk("b", "send_email", "def send_email(to, body):\n    \"\"\"Deliver a message by SMTP.\"\"\""),
        "c": chunk("c", "resize_image", "def resize_image(img, w, h):\n    \"\"\"Scale a picture.\"\"\""),
    }
    scores = {"c": 0.9, "b": 0.8, "a": 0.5, "a2": 0.45}
    tail = {f"t{i}": 0.1 for i in range(rerank.TOP_K)}
    chunks |= {cid: chunk(cid, f"tail_{cid}", f"def tail_{cid}(): pass") for cid in tail}
    scores |= tail
    before_scores = dict(scores)
    assert rerank.rerank("load the configuration file", scores, chunks)
    assert scores["a"] > scores["b"]  # the cosine's first moves up past the second of the fused order
    assert "a2" not in scores
    head = [cid for cid, _ in rerank.head(before_scores, chunks)]
    assert sorted(scores[cid] for cid in head) == sorted(before_scores[cid] for cid in head)
    assert all(scores[cid] == 0.1 for cid in tail if cid not in head)  # the tail keeps its place
    # a head that is all stored MiniLM vectors is left alone
    before = dict(scores)
    assert not rerank.rerank("send mail", scores, chunks, covered=lambda ids: set(ids))
    assert scores == before
