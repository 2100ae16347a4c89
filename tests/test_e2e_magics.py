"""The `%direng` magics end to end in a real IPython kernel (jupyter_client, python3 kernelspec),
in-process transport (no server), on a fresh git copy of the sample repository:
`%direng index --watch` indexes and keeps the index fresh after a commit, `%direng help` shows
the help, and `%%direng --format code` puts the answer's code into the next cell (the kernel's
`set_next_input` payload), filling `{name}` from the namespace.

One kernel for the module; cells run in order through `execute()`.
"""

from __future__ import annotations

import os
import time

import pytest

from conftest import commit_all, make_repo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


class Kernel:
    def __init__(self, cwd):
        from jupyter_client.manager import start_new_kernel

        env = {k: v for k, v in os.environ.items() if k not in ("DIRENG_SERVER_URL", "DIRENG_TOKEN", "DIRENG_ROOT")}
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env, startup_timeout=120)

    def execute(self, code: str, timeout: float = 120) -> dict:
        """Run a cell: {"status", "stdout", "stderr", "displays" (mime bundles), "payload", "error"}."""
        out = {"stdout": "", "stderr": "", "displays": [], "error": None}

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind in ("display_data", "execute_result"):
                out["displays"].append(content["data"])
            elif kind == "error":
                out["error"] = "\n".join(content["traceback"])

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)["content"]
        out["status"], out["payload"] = reply["status"], reply.get("payload", [])
        return out

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("e2e-magics") / "repo")


@pytest.fixture(scope="module")
def kernel(repo):
    k = Kernel(repo)
    try:
        loaded = k.execute("%load_ext direng_kernel")
        assert loaded["status"] == "ok", loaded
        yield k
    finally:
        k.close()


def markdown(cell: dict) -> str:
    return "\n".join(d.get("text/markdown", "") for d in cell["displays"])


def test_index_watch_indexes_and_refreshes_after_a_commit(kernel, repo):
    cell = kernel.execute("%direng index --watch")
    assert cell["status"] == "ok" and cell["error"] is None, cell
    assert f"DirEng: indexed {repo.resolve()}: 9 added" in cell["stderr"], cell["stderr"]
    assert "watching for changes in the background" in cell["stderr"]
    (repo / "shop" / "loyalty.py").write_text(
        '"""Loyalty points."""\n\n\ndef award_loyalty_points(order_total: int) -> int:\n'
        '    """One point per full euro spent."""\n    return order_total // 100\n')
    commit_all(repo, "loyalty points")
    probe = ("_hits = get_ipython().run_line_magic('direng', 'search award loyalty points -k 3 --mode bm25')\n"
             "print('HITS', list(_hits['symbol']))")
    deadline, seen, status = time.monotonic() + 60, "", ""
    while time.monotonic() < deadline:  # the file event and the moved HEAD may be two refreshes
        seen, status = kernel.execute(probe)["stdout"], markdown(kernel.execute("%direng status"))
        if "award_loyalty_points" in seen and "10 files" in status and "fresh" in status and "behind" not in status:
            break
        time.sleep(0.5)
    assert "award_loyalty_points" in seen, seen  # the daemon refreshed without another `%direng index`
    assert "10 files" in status and "fresh" in status and "behind" not in status, status  # and the new commit


def test_help_lists_what_direng_answers_and_the_magics(kernel):
    cell = kernel.execute("%direng help")
    assert cell["status"] == "ok" and cell["error"] is None, cell
    text = markdown(cell)
    assert "**DirEng** answers questions about this repository" in text
    for item in ("`search QUERY`", "`what calls NAME?`", "`explain NAME`", "%direng ask|search|graph|index"):
        assert item in text, text
    assert kernel.execute("%direng")["displays"] == cell["displays"]  # no command: the same help


def test_cell_magic_format_code_puts_the_code_into_the_next_cell(kernel):
    cell = kernel.execute("fn = 'charge_card'\n")
    cell = kernel.execute("%%direng --format code\nexplain {fn}")
    assert cell["status"] == "ok" and cell["error"] is None, cell
    assert cell["displays"] == []  # nothing shown: the code goes to the next cell
    nexts = [p for p in cell["payload"] if p.get("source") == "set_next_input"]
    assert len(nexts) == 1 and nexts[0]["replace"] is False, cell["payload"]
    code = nexts[0]["text"]
    assert code.startswith("def charge_card(card_number: str, amount_cents: int) -> str:"), code
    assert "```" not in code and "**" not in code  # the code block's content, not the Markdown around it
    compile(code, "<next cell>", "exec")  # runnable Python
    shown = kernel.execute("%%direng\nexplain {fn}")  # the default format shows the Markdown instead
    assert "```python" in markdown(shown) and not shown["payload"]
