"""Query intent in search (index/intent.py) and the local answer's shape (direng/compose.py).

A small repository of its own, indexed for real: relation questions in several wordings are
answered from the call graph (resolved edges, references, and calls the resolver could not
bind but that name the only definition: a Go method on a value, Rust's `self.method()`);
tests, changelogs and constants lose to the definition unless the question names them; type
questions lift the type. The composed answer opens with a definition, says why in a sentence,
and groups its hits by file.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from conftest import commit_all, git
from direng_kernel.direng.assistant import DirEng
from direng_kernel.direng.compose import Composer, evidence, lead_first
from direng_kernel.index.intent import asks_for_asides, asks_for_type, file_role, relation_candidates
from direng_kernel.models import Hit
from direng_kernel.workbench import Workbench

FILES = {
    "billing/charges.py": '''
        """Charging customers."""

        RETRY_LIMIT_FOR_DECLINED_CARD_CHARGES = 3


        def charge_card(card, amount):
            """Charge a card, retrying a declined card a few times."""
            for attempt in range(RETRY_LIMIT_FOR_DECLINED_CARD_CHARGES):
                if card.debit(amount):
                    return True
            return False


        def checkout(cart, card):
            return charge_card(card, cart.total())


        def refund_then_charge(card, amount):
            card.credit(amount)
            return charge_card(card, amount)
        ''',
    "billing/cart.py": '''
        class ShoppingCart:
            """The items a customer is about to buy, with their prices."""

            def __init__(self):
                self.items = []

            def total(self):
                return sum(price for _, price in self.items)


        def cart_summary(cart: ShoppingCart) -> str:
            return f"{len(cart.items)} items in the shopping cart"


        class GiftCart(ShoppingCart):
            pass
        ''',
    "tests/test_charges.py": '''
        from billing.charges import charge_card


        def test_charge_card_retries_a_declined_card_a_few_times():
            """Charging a declined card retries, then gives up."""
            assert charge_card(None, 0) is False
        ''',
    "CHANGELOG.md": '''
        # Changes

        - Charging a declined card now retries a few times before giving up.
        ''',
    "queue/store.go": '''
        package queue

        type Store struct {
            pending []string
        }

        func (s *Store) flushPending() {
            s.pending = nil
        }

        func Drain(s *Store) {
            s.flushPending()
        }

        func (s *Store) Close() {
            s.flushPending()
        }
        ''',
    # a TypeScript barrel whose modules import from it again (mobx's src/internal.ts)
    "web/internal.ts": '''
        export * from "./core/track"
        export * from "./core/run"
        ''',
    "web/core/track.ts": '''
        import { runAll } from "../internal"

        export function trackDerived(fn: () => void): void {
            fn()
        }

        export function retrack(): void {
            runAll()
        }
        ''',
    "web/core/run.ts": '''
        import { trackDerived } from "../internal"

        export function runAll(): void {
            trackDerived(() => {})
        }
        ''',
    "reader/src/lib.rs": '''
        pub struct Reader {
            pos: usize,
        }

        impl Reader {
            fn parse_escape(&mut self) -> usize {
                self.pos += 1;
                self.pos
            }

            fn next_token(&mut self) -> usize {
                self.parse_escape()
            }
        }
        ''',
}


@pytest.fixture(scope="module")
def wb(tmp_path_factory):
    root = tmp_path_factory.mktemp("intent") / "repo"
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "initial")
    w = Workbench(root)
    w.index()
    return w


def names(hits) -> list[tuple[str, str | None]]:
    return [(h.path, h.symbol) for h in hits]


# -- reading the query ------------------------------------------------------------------------

@pytest.mark.parametrize("query,first", [
    ("what calls charge_card?", "charge_card"),
    ("which functions use charge_card", "charge_card"),
    ("who depends on clearObserving?", "clearObserving"),
    ("where is hasNoOptDefVal used", "hasNoOptDefVal"),
    ("what ends up calling queueForUnobservation", "queueForUnobservation"),
    ("list every place that calls notifyListeners", "notifyListeners"),
    ("where is the indent helper invoked by the pretty printer", "indent"),
    ("which methods rely on Store.flushPending()", "Store.flushPending"),
])
def test_relation_wordings_name_their_target(query, first):
    assert relation_candidates(query)[0] == first


@pytest.mark.parametrize("query", [
    "how does the session use adapters to send requests",  # a "how" question about behaviour
    "which class is used to store cookies",                 # "used to": purpose, not a relation
    "where is the retry limit enforced",                    # no relation verb
])
def test_questions_that_are_not_relations(query):
    assert relation_candidates(query) == []


def test_file_roles_and_what_the_query_names():
    assert [file_role(p) for p in ("src/click/testing.py", "tests/test_x.py", "pkg/cmd_test.go",
                                   "src/a.spec.ts", "benchmarks/run.py", "examples/demo.py")] == \
        ["code", "test", "test", "test", "bench", "example"]
    assert file_role("CHANGELOG.md") == "doc" and file_role("docs/api.rst") == "doc"
    assert file_role("config/settings.yaml") == "code" and file_role("analysis.ipynb") == "code"
    assert asks_for_asides("which test covers the declined card?") == {"test"}
    assert asks_for_asides("what does the changelog say about retries") == {"doc"}
    assert asks_for_asides("how is a declined card retried") == frozenset()
    assert asks_for_type("which class represents the items a customer buys")
    assert not asks_for_type("how is the total computed")


# -- relation routing -----------------------------------------------------------------------

@pytest.mark.parametrize("query", ["which functions use charge_card?", "who depends on charge_card",
                                   "where is charge_card invoked?", "what calls charge_card?"])
def test_relation_questions_answer_with_the_callers(wb, query):
    hits = wb.search(query, k=5)
    top = set(names(hits[:3]))
    assert {("billing/charges.py", "checkout"), ("billing/charges.py", "refund_then_charge")} <= top
    assert all(h.sources == ["graph"] and "charge_card" in h.snippet for h in hits)


def test_type_references_and_subclasses_count_as_users(wb):
    hits = wb.search("who depends on ShoppingCart?", k=6)
    users = {h.symbol for h in hits if h.sources == ["graph"]}
    assert {"cart_summary", "GiftCart"} <= users


def test_go_method_calls_resolve_through_the_receiver_or_are_found_by_name(wb):
    hits = wb.search("which functions call flushPending?", k=5)
    graph = {h.symbol: h.snippet for h in hits if h.sources == ["graph"]}
    assert set(graph) == {"Drain", "Store.Close"}
    # `s.flushPending()` in `func (s *Store) Close()`: the receiver's type binds it
    assert "matched by name" not in graph["Store.Close"]
    # in `func Drain(s *Store)` the parameter's type is not tracked: found by name, and said so
    assert "matched by name" in graph["Drain"]
    callers = wb.graph("queue/store.go::Store.flushPending", direction="callers")
    assert {n.name for n in callers.nodes if n.id != callers.center} >= {"Store.Close"}


def test_typescript_calls_resolve_through_a_barrel_that_its_modules_import(wb):
    callers = wb.graph("web/core/track.ts::trackDerived", direction="callers")
    assert {n.id for n in callers.nodes if n.id != callers.center} == {"web/core/run.ts::runAll"}
    back = wb.graph("web/core/run.ts::runAll", direction="callers")
    assert {n.id for n in back.nodes if n.id != back.center} == {"web/core/track.ts::retrack"}
    hits = wb.search("who calls trackDerived?", k=3)
    assert [(h.path, h.symbol) for h in hits] == [("web/core/run.ts", "runAll")]
    assert "matched by name" not in hits[0].snippet


def test_a_rust_self_method_call_is_found_by_name(wb):
    hits = wb.search("where is parse_escape invoked", k=5)
    assert hits[0].symbol == "Reader.next_token" and hits[0].sources == ["graph"]


def test_routing_off_falls_back_to_text(wb):
    searcher = wb.searcher
    searcher.relation_routing = False
    try:
        hits = wb.search("which functions use charge_card?", k=5)
    finally:
        searcher.relation_routing = True
    assert not any(h.sources == ["graph"] for h in hits)


# -- asides, constants and types --------------------------------------------------------------

def test_tests_and_changelogs_lose_to_the_definition_unless_asked_for(wb):
    query = "how is a declined card retried a few times when charging"
    test = ("tests/test_charges.py", "test_charge_card_retries_a_declined_card_a_few_times")
    asides = {test, ("tests/test_charges.py", None), ("CHANGELOG.md", None)}
    searcher = wb.searcher
    saved = searcher.aside_weight
    searcher.aside_weight = 1.0
    try:  # without the demotion, the test (named after the behaviour) and the changelog crowd in
        plain = names(wb.search(query, k=5))
    finally:
        searcher.aside_weight = saved
    assert len(asides & set(plain[:4])) >= 2
    shipped = names(wb.search(query, k=5))
    assert shipped[0] == ("billing/charges.py", "charge_card")
    assert not asides & set(shipped[:4])  # the definitions of billing/ come first
    # asked for, the test is the answer
    asked = wb.search("which test checks that a declined card is retried a few times", k=3)
    assert (asked[0].path, asked[0].symbol) == test


def test_a_type_question_lifts_the_type_over_its_users(wb):
    hits = wb.search("which class represents the items a customer is about to buy", k=5)
    assert (hits[0].path, hits[0].symbol) == ("billing/cart.py", "ShoppingCart")


# -- the composed answer ------------------------------------------------------------------------

def test_the_answer_opens_with_a_definition_says_why_and_groups_by_file(wb):
    answer = DirEng(wb).chat("how is a declined card retried when charging?")
    text = answer.markdown
    first = text.split("\n\n", 1)[0]
    assert first.startswith("For **how is a declined card retried when charging?**, look at `charge_card` (function)")
    assert "billing/charges.py" in first and ("its name says" in first or "its docstring reads" in first)
    headings = re.findall(r"^### `([^`]+)`$", text, re.M)
    assert headings and len(headings) == len(set(headings))  # one section per file
    assert headings[0] == "billing/charges.py"


def test_a_relation_answer_says_it_came_from_the_call_graph(wb):
    answer = DirEng(wb).chat("which functions use charge_card?")
    first = answer.markdown.split("\n\n", 1)[0]
    assert "from the call graph" in first and "calls charge_card at line" in first


def test_lead_first_never_opens_with_a_constant_or_a_test(wb):
    def hit(path, symbol, kind):
        return Hit(path=path, symbol=symbol, kind=kind, start_line=1, end_line=2, score=1.0)

    constant = hit("billing/charges.py", "RETRY_LIMIT_FOR_DECLINED_CARD_CHARGES", "constant")
    test = hit("tests/test_charges.py", "test_charge_card_retries_a_declined_card_a_few_times", "function")
    definition = hit("billing/charges.py", "charge_card", "function")
    assert lead_first([constant, test, definition]) == [definition, constant, test]
    assert lead_first([constant, test]) == [constant, test]  # nothing better: keep the order
    assert lead_first([definition, constant]) == [definition, constant]
    # "how…" asks what acts: a data type at the top gives way to a function among the first three.
    record = hit("billing/charges.py", "ChargeResult", "class")
    helper = hit("billing/retry.py", "retry_declined", "function")
    assert lead_first([record, constant, helper], question="how are declined charges retried?") == \
        [helper, record, constant]
    assert lead_first([record, constant, helper], question="which class holds a charge's result?") == \
        [record, constant, helper]
    assert lead_first([record, constant, test, helper], question="how are charges retried?")[0] == record
    why = evidence("how is a declined card charged", definition,
                   Composer(wb).docstring("billing/charges.py", "charge_card"))
    assert "its name says *card*" in why
