"""A long-running process's graph follows index refreshes made by another workbench or process.

The server's engine holds a `CodeGraph` in memory; a lane (or `direng index` in a shell) refreshes
the same store through a workbench of its own. The engine must then answer from the new graph.
"""

from __future__ import annotations

from conftest import commit_all, make_repo, run_cli
from direng_kernel.workbench import Workbench

NEW_CALLER = '''"""Refunds."""

from .payment import charge_card


def refund_then_recharge(card_number: str, amount_cents: int) -> str:
    """Charge again after a refund."""
    return charge_card(card_number, amount_cents)
'''


def callers(wb: Workbench) -> set[str]:
    return {n.name for n in wb.graph("charge_card", direction="callers").nodes}


def test_graph_reloads_after_another_workbench_refreshed_the_store(tmp_path):
    repo = make_repo(tmp_path / "repo")
    engine_side = Workbench(repo)
    engine_side.index()
    assert "refund_then_recharge" not in callers(engine_side)
    graph = engine_side.code_graph()

    (repo / "shop" / "refunds.py").write_text(NEW_CALLER)
    commit_all(repo, "refunds")
    lane_side = Workbench(repo)  # as PAS's executor does before a lane runs
    assert lane_side.index().added == 1
    lane_side.close()
    assert "refund_then_recharge" in callers(engine_side)
    assert engine_side.code_graph() is not graph

    # A refresh that changes nothing (another process's, here the CLI's) keeps the loaded graph.
    graph = engine_side.code_graph()
    assert run_cli("index", str(repo)).returncode == 0
    assert engine_side.code_graph() is graph
    engine_side.close()


def test_own_refresh_patches_in_place(tmp_path):
    repo = make_repo(tmp_path / "repo")
    wb = Workbench(repo)
    wb.index()
    graph = wb.code_graph()
    (repo / "shop" / "refunds.py").write_text(NEW_CALLER)
    wb.index()
    assert wb.code_graph() is graph and "refund_then_recharge" in callers(wb)
    wb.close()
