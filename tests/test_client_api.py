"""One application API, two transports: `Engine` (in-process) and `HttpClient` (the REST API).

Both satisfy the `Client` protocol with the same signatures, and against one real server they
answer the same questions with the same models and raise the same exceptions.
"""

from __future__ import annotations

import inspect

import pytest

from direng_kernel.client import Client, HttpClient
from direng_kernel.engine import Engine
from direng_kernel.errors import NotFoundError, UnknownSymbolError
from direng_kernel.records import jsonable

pytestmark = pytest.mark.slow

METHODS = sorted(name for name, member in vars(Client).items()
                 if callable(member) and not name.startswith("_"))


def _params(fn) -> list[tuple[str, object]]:
    sig = inspect.signature(fn)
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


@pytest.mark.parametrize("transport", [Engine, HttpClient])
def test_each_transport_has_the_protocols_methods_and_signatures(transport):
    assert len(METHODS) >= 20
    for name in METHODS:
        assert hasattr(transport, name), f"{transport.__name__} lacks {name}"
        ours, theirs = _params(getattr(transport, name)), _params(getattr(Client, name))
        # a transport may take extra keyword options (a timeout), never fewer or renamed ones
        assert ours[:len(theirs)] == theirs, f"{transport.__name__}.{name}{ours} != Client.{name}{theirs}"


def test_there_is_no_pass_through_client():
    import direng_kernel.client as client

    assert not hasattr(client, "InProcessClient")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from test_server import running_server

    with running_server(tmp_path_factory.mktemp("api")) as srv:
        engine = Engine(srv.root)
        try:
            yield engine, HttpClient(srv.url + "/direng/api", srv.token)
        finally:
            engine.stop()


def _same(a, b):
    return jsonable(a) == jsonable(b)


@pytest.mark.e2e("GET /direng/api/path", "GET /direng/api/map", "direng map")
def test_both_transports_give_the_same_answers(both):
    engine, http = both
    assert isinstance(engine, Client) and isinstance(http, Client)
    assert _same(engine.search("charge a credit card", k=5), http.search("charge a credit card", k=5))
    assert _same(engine.search("charge a credit card", mode="static"), http.search("charge a credit card", mode="static"))
    g1, g2 = engine.graph("charge_card", depth=2, code=True), http.graph("charge_card", depth=2, code=True)
    assert g1.model_dump(mode="json") == g2.model_dump(mode="json") and g1.code
    assert http.graph("charge_card").code == {}  # excerpts only when asked for
    path = http.path("checkout", "charge_card")
    assert [n.name for n in path][0] == "checkout" and path[-1].name == "charge_card"
    assert _same(engine.path("checkout", "charge_card"), path)
    outline = http.repo_map(tokens=200, focus=["shop/payment.py"])
    assert outline == engine.repo_map(tokens=200, focus=["shop/payment.py"])
    assert "shop/payment.py:" in outline and len(outline) <= 200 * 4
    assert engine.complete("Cart.") == http.complete("Cart.")
    assert engine.health()["store"] == http.health()["store"]


def test_both_transports_raise_the_same_errors(both):
    engine, http = both
    for client in both:
        with pytest.raises(UnknownSymbolError) as err:
            client.graph("charge_crad")
        assert err.value.name == "charge_crad" and "charge_card" in err.value.suggestions
        with pytest.raises(NotFoundError):
            client.task("t-does-not-exist")


def test_tasks_through_either_transport_land_in_one_store(both):
    engine, http = both
    made = http.new_task("document the shop package", lane="narrative", parameters={"n": 1}, rehearsal=True)
    assert made.id in {t.id for t in engine.tasks()}
    assert engine.task(made.id).parameters == {"n": 1}
    assert http.task_action(made.id, "estimate").state.value == "estimated"
    assert http.task_action(made.id, "cancel").state.value == "cancelled"
    assert engine.task(made.id).state.value == "cancelled"
