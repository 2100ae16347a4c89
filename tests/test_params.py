"""`--param KEY=VALUE` means one thing on every surface: JSON when the value parses as JSON, else text.

The rule lives in `pex/params.py`; the CLI (`direng task new`) and the magic (`%direng delegate`)
are both driven for real here, and the task each creates is read back from the store.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from direng_kernel.pex.params import ParameterError, parse_params

ITEMS = ["n=3", "ratio=0.5", "dry=true", "none=null", 'paths=["a.py","b.py"]', "title=fix the bug",
         'quoted="42"', "empty=", "eq=a=b"]
EXPECTED = {"n": 3, "ratio": 0.5, "dry": True, "none": None, "paths": ["a.py", "b.py"], "title": "fix the bug",
            "quoted": "42", "empty": "", "eq": "a=b"}


def test_the_rule():
    assert parse_params(ITEMS) == EXPECTED
    # KEY=VALUE items override --params-json; the last of a repeated key wins
    assert parse_params(["n=4", "n=5"], '{"n": 1, "m": 2}') == {"n": 5, "m": 2}
    for bad in (["novalue"], ["=3"]):
        with pytest.raises(ParameterError, match="expected KEY=VALUE"):
            parse_params(bad)
    with pytest.raises(ParameterError, match="JSON object"):
        parse_params([], "[1, 2]")


def test_the_cli_applies_the_rule(repo):
    args = [a for item in ITEMS for a in ("--param", item)]
    proc = run_cli("task", "new", "--title", "params", "--lane", "narrative", *args, "--root", str(repo), "--json")
    assert proc.returncode == 0, proc.stderr
    task_id = json.loads(proc.stdout)["id"]
    shown = run_cli("task", "status", task_id, "--root", str(repo), "--json")
    assert json.loads(shown.stdout)["parameters"] == EXPECTED
    bad = run_cli("task", "new", "--title", "p", "--lane", "narrative", "--param", "novalue", "--root", str(repo))
    assert bad.returncode != 0 and "expected KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_the_magic_applies_the_same_rule(repo):
    from test_notebooks import run_notebook, text_of

    from direng_kernel.pex.store import TaskStore
    from direng_kernel.workbench import Workbench

    Workbench(repo).index()
    params = " ".join(f"--param '{item}'" for item in ITEMS)
    nb = run_notebook(["%load_ext direng_kernel",
                       f'%direng delegate "document the shop package" --lane narrative {params}'], repo)
    assert "lane **narrative**" in text_of(nb.cells[1]), text_of(nb.cells[1])
    (task,) = TaskStore.for_store(repo / ".direng").list_tasks()
    assert task.parameters == EXPECTED
