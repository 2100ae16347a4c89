"""Headless demo (`make run` until the notebook parts exist): index a root, then ask it things.

    python -m direng_kernel.demo [ROOT]
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from .errors import DirEngError
from .workbench import Workbench

QUESTIONS = [
    "where are identifiers split into search terms",
    "how are tree-sitter queries loaded for a language",
    "reciprocal rank fusion of rankings",
    "what calls run_index",
]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = argv[0] if argv else "."
    console = Console()
    try:
        wb = Workbench(root)
        report = wb.index(progress=True)
        console.print(f"[bold]indexed[/] {report.root}: {report.added} added, {report.modified} modified, "
                      f"{report.deleted} deleted, {report.unchanged} unchanged in {report.seconds:.2f}s")
        st = wb.status()
        console.print(f"{st.files} files, {st.symbols} symbols, {st.chunks} chunks; commit {st.indexed_commit}")
        for q in QUESTIONS:
            table = Table(title=q, title_justify="left")
            for col in ("location", "symbol", "kind", "via"):
                table.add_column(col)
            for h in wb.search(q, k=5):
                table.add_row(h.citation, h.symbol or "", h.kind, "+".join(h.sources))
            console.print(table)
        important = wb.important(8)
        console.print("[bold]most central symbols[/]: " + ", ".join(n.name for n in important))
        called = next((n for n in wb.important(50) if n.kind in ("function", "method")), None)
        if called:
            g = wb.graph(called.id, direction="callers")
            console.print(f"[bold]callers of {called.name}[/] ({called.path}:{called.start_line}): "
                          + ", ".join(n.name for n in g.nodes if n.id != g.center)[:600])
        console.print("[bold]repo map[/] (256 tokens):\n" + wb.repo_map(max_tokens=256))
    except DirEngError as err:
        console.print(f"[red]direng: error:[/] {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
