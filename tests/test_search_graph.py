"""Search and graph queries over the indexed sample repository (real models, real stores)."""

from __future__ import annotations

import pytest

from direng_kernel.errors import UnknownSymbolError


def top_symbols(hits, n=5):
    return [(h.path, h.symbol) for h in hits[:n]]


def test_counts_and_languages(indexed_sample):
    st = indexed_sample.status()
    assert st.files == 9  # 8 sources (Python, TypeScript, Rust, Go) + README
    assert st.symbols > 20
    assert st.dense_chunks == st.chunks  # dense=True filled every MiniLM vector
    assert st.fresh and st.indexed_commit and len(st.indexed_commit) == 40


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_natural_language_question_finds_definition(indexed_sample, mode):
    hits = indexed_sample.search("charge the customer's credit card", k=5, mode=mode)
    assert ("shop/payment.py", "charge_card") in top_symbols(hits)


def test_hits_cite_whole_definition(indexed_sample):
    hit = next(h for h in indexed_sample.search("shipping cost for a zone", k=5) if h.symbol == "shipping_cost")
    assert (hit.path, hit.start_line, hit.end_line) == ("shop/shipping.py", 9, 11)
    assert hit.citation == "shop/shipping.py:9-11"
    assert hit.signature.startswith("def shipping_cost(zone: str, weight_grams: int)")


def test_identifier_splitting_matches_camel_case(indexed_sample):
    hits = indexed_sample.search("price label", k=3, mode="bm25")
    assert hits[0].symbol == "StoreClient.priceLabel"


def test_other_languages_are_searchable(indexed_sample):
    assert ("engine/src/lib.rs", "refill_low") in top_symbols(indexed_sample.search("refill stock below threshold"))
    assert ("svc/server.go", "Server.Handler") in top_symbols(indexed_sample.search("order status http handler"))
    assert ("web/format.ts", "formatPrice") in top_symbols(indexed_sample.search("render cents as euro amount"))


def test_markdown_is_indexed_as_text(indexed_sample):
    # Prose is an aside (index/intent.py): it leads when the question names it.
    hits = indexed_sample.search("what does the readme say about the fixture repository storefront client", k=5)
    assert (hits[0].path, hits[0].kind) == ("README.md", "text")


def test_what_calls_is_answered_by_the_graph(indexed_sample):
    hits = indexed_sample.search("what calls charge_card?", k=5)
    assert [(h.path, h.symbol) for h in hits] == [("shop/payment.py", "checkout")]
    assert hits[0].sources == ["graph"]


def test_callers_resolve_through_module_imports(indexed_sample):
    g = indexed_sample.graph("checkout", direction="callers")
    callers = {n.name for n in g.nodes if n.id != g.center}
    assert callers == {"checkout_with_shipping"}  # `payment.checkout(...)` via `from shop import payment`


def test_callees_resolve_self_and_inherited_methods(indexed_sample):
    g = indexed_sample.graph("Cart.total", direction="callees")
    assert "shop/models.py::Cart.subtotal" in {n.id for n in g.nodes}  # self.subtotal()
    g = indexed_sample.graph("DiscountCart.total", direction="callees")
    assert "shop/models.py::Cart.total" in {n.id for n in g.nodes}  # super().total() → the base's method
    g = indexed_sample.graph("checkout", direction="callees")
    targets = {e.target: e.resolved for e in g.edges}
    assert targets["shop/payment.py::charge_card"] is True
    # `cart` is a parameter of unknown type: the call is kept, flagged, never guessed.
    assert targets["unresolved:cart.total"] is False


def test_inheritance_and_traits_are_edges(indexed_sample):
    g = indexed_sample.graph("DiscountCart")
    kinds = {(e.source, e.target, e.kind) for e in g.edges}
    assert ("shop/models.py::DiscountCart", "shop/models.py::Cart", "inherits") in kinds
    g = indexed_sample.graph("Stock")
    assert any(e.kind == "implements" and e.target == "engine/src/lib.rs::Restock" for e in g.edges)


def test_depth_and_cap(indexed_sample):
    one = indexed_sample.graph("charge_card", direction="callers", depth=1)
    two = indexed_sample.graph("charge_card", direction="callers", depth=2)
    assert {n.name for n in two.nodes} > {n.name for n in one.nodes}
    capped = indexed_sample.graph("shop/models.py", depth=3, max_nodes=3)
    assert capped.truncated and len(capped.nodes) == 3


def test_unknown_symbol_suggests_close_names(indexed_sample):
    with pytest.raises(UnknownSymbolError) as err:
        indexed_sample.graph("chrge_card")
    assert "charge_card" in err.value.suggestions


def test_shortest_path_and_importance(indexed_sample):
    path = indexed_sample.shortest_path("checkout_with_shipping", "charge_card")
    assert [n.name for n in path] == ["checkout_with_shipping", "checkout", "charge_card"]
    top = indexed_sample.important(10)
    assert len(top) == len({n.id for n in top}) == 10 and not any(n.kind in ("file", "module") for n in top)
    assert [n.importance for n in top] == sorted((n.importance for n in top), reverse=True)
    ranked = indexed_sample.important(1000)
    score = {n.id: n.importance for n in ranked}
    # callers vote for callees: importance rises along the only call chain into charge_card
    chain = ["shop/shipping.py::checkout_with_shipping", "shop/payment.py::checkout", "shop/payment.py::charge_card"]
    assert score[chain[0]] < score[chain[1]] < score[chain[2]]
    # subclasses vote for bases
    assert score["shop/models.py::DiscountCart"] < score["shop/models.py::Cart"]
    # every definition something else calls, imports, references or inherits outranks every one only
    # its file contains; the top 10 are all used ones
    g = indexed_sample.code_graph().g
    used = {n.id for n in ranked if any(d["kind"] != "contains" for _u, _v, d in g.in_edges(n.id, data=True))}
    unused = set(score) - used
    assert used and unused and max(score[n] for n in unused) < min(score[n] for n in used)
    assert {n.id for n in top} <= used


def prompt_tokens(text: str) -> int:
    """What the broker charges a lane's token budget for sending `text` to a provider."""
    from direng_kernel.broker.budget import estimate_input_tokens
    from direng_kernel.models import ChatMessage, ProviderRequest

    return estimate_input_tokens(ProviderRequest(messages=[ChatMessage(role="user", content=text)]))


def test_repo_map_fits_budget(indexed_sample):
    maps = {b: indexed_sample.repo_map(max_tokens=b) for b in (20, 40, 80, 160, 2000)}
    for budget, text in maps.items():
        assert text and prompt_tokens(text) <= budget, (budget, prompt_tokens(text))
    # a larger budget only adds lines: what the smaller map chose stays in, in the same file groups
    budgets = sorted(maps)
    for small, big in zip(budgets, budgets[1:]):
        assert set(maps[small].splitlines()) <= set(maps[big].splitlines())
        assert len(maps[big]) >= len(maps[small])
    assert len(maps[160]) > len(maps[40]) > len(maps[20])  # the budget is used, not just capped
    assert "def charge_card" in maps[2000] and "def charge_card" not in maps[20]
    focused = indexed_sample.repo_map(max_tokens=60, focus=["engine/src/lib.rs"])
    assert "engine/src/lib.rs" in focused
