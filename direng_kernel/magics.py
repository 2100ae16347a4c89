"""`%direng` / `%%direng`: DirEng inside any IPython kernel.

    %load_ext direng_kernel
    %direng ask where are cookies extracted from a response?
    %direng search retry policy -k 5        # a DataFrame, also in `_`
    %direng graph Session.request --callers
    %%direng --format code
    write a function that calls {func_name} with retries

The magics talk to a client (`client.connect()`): the Jupyter server's engine when the kernel
was started by a server with the extension, otherwise an in-process engine on the git root of
the working directory. `{name}` in a prompt is filled from the user namespace.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import traceback
import uuid
from pathlib import Path

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import Markdown, display

from .client import connect
from .context import context_enabled, notebook_context
from .errors import DirEngError, NotIndexedError
from .models import DEFAULT_SEARCH_MODE, SEARCH_MODES
from .pex.params import parse_params
from .tables import runs_frame

USAGE = ("usage: %direng ask QUESTION | search QUERY [-k N] | graph SYMBOL [--callers|--callees] [--depth N] "
         "| index [--watch] | status | delegate \"BRIEF\" [--lane L] [--yes] | runs | plms | proposals | apply ID | reject ID "
         "| explain-error | history | reset | context [on|off] | help ;  %%direng [--format markdown|code|json]")
CODE_BLOCK = re.compile(r"```[\w+-]*\n(.*?)```", re.S)


class UsageError(DirEngError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would sys.exit(); a magic prints a usage line instead
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def _parser(prog: str, *args: tuple[tuple, dict]) -> _Parser:
    p = _Parser(prog=f"%direng {prog}", add_help=False)
    for a, kw in args:
        p.add_argument(*a, **kw)
    return p


PARSERS = {
    "search": _parser("search", (("query",), {"nargs": "+"}), (("-k",), {"type": int, "default": 10}),
                      (("--mode",), {"choices": SEARCH_MODES, "default": DEFAULT_SEARCH_MODE})),
    "graph": _parser("graph", (("symbol",), {}), (("--callers",), {"action": "store_true"}),
                     (("--callees",), {"action": "store_true"}), (("--depth",), {"type": int, "default": 1}),
                     (("--max-nodes",), {"type": int, "default": 150})),
    "index": _parser("index", (("--watch",), {"action": "store_true"})),
    "delegate": _parser("delegate", (("brief",), {"nargs": "+"}), (("--lane",), {"default": None}),
                        (("--yes", "-y"), {"action": "store_true"}), (("--title",), {"default": None}),
                        (("--param",), {"action": "append", "default": []}),
                        (("--timeout",), {"type": float, "default": 3600.0})),
    "cell": _Parser(prog="%%direng", add_help=False),
}
PARSERS["cell"].add_argument("--format", "-f", choices=["markdown", "code", "json"], default="markdown")
PARSERS["cell"].add_argument("--session", default=None)


@magics_class
class DirEngMagics(Magics):
    def __init__(self, shell, client=None):
        super().__init__(shell)
        self._client = client
        self._notices: list[str] = []
        self.session = os.environ.get("JPY_SESSION_NAME") or f"kernel-{uuid.uuid4().hex[:8]}"
        self._daemon = None
        self.last_delegation = None  # the latest %direng delegate (its buttons, its task)
        self.send_context = context_enabled()

    def context(self, cell_source: str | None = None):
        """The live notebook context sent with a message, or None when the user turned it off."""
        return notebook_context(self.shell, cell_source) if self.send_context and self.shell else None

    @property
    def client(self):
        if self._client is None:
            self._client = connect(notices=self._notices)
            for notice in self._notices:
                print(f"DirEng: {notice}", file=sys.stderr)
            self._notices.clear()
        return self._client

    def _ensure_index(self) -> None:
        """In-process and never indexed: index now (with a progress bar) rather than fail."""
        if getattr(self.client, "transport", "") != "in-process":
            return
        if not self.client.health()["indexed"]:
            print(f"DirEng: indexing {self.client.root} for the first time…", file=sys.stderr)
            self.client.index(progress=True)

    # -- entry point ------------------------------------------------------------
    @line_cell_magic
    def direng(self, line: str, cell: str | None = None):
        try:
            if cell is not None:
                return self._cell(line, cell)
            return self._line(line)
        except UsageError as exc:
            print(f"DirEng: {exc}", file=sys.stderr)
        except NotIndexedError as exc:
            print(f"DirEng: {exc}. Run `%direng index` (or wait for the server's first index).", file=sys.stderr)
        except DirEngError as exc:
            print(f"DirEng: {exc}", file=sys.stderr)

    def _line(self, line: str):
        words = line.strip().split(None, 1)
        if not words:
            return self._show(self.client.chat("help", self.session))
        command, rest = words[0], (words[1] if len(words) > 1 else "")
        handler = getattr(self, f"_cmd_{command.replace('-', '_')}", None)
        if handler is None:
            raise UsageError(f"unknown command {command!r}\n{USAGE}")
        return handler(rest)

    def _args(self, name: str, rest: str) -> argparse.Namespace:
        try:
            argv = shlex.split(rest)
        except ValueError as exc:
            raise UsageError(f"{exc}\n{PARSERS[name].format_usage().strip()}") from None
        return PARSERS[name].parse_args(argv)

    # -- commands ---------------------------------------------------------------
    def _cmd_help(self, rest: str):
        return self._show(self.client.chat("help", self.session))

    def _cmd_ask(self, rest: str):
        if not rest.strip():
            raise UsageError(f"ask needs a question\n{USAGE}")
        self._ensure_index()
        return self._show(self.client.chat(rest, self.session, self.context()))

    def _cmd_search(self, rest: str):
        args = self._args("search", rest)
        self._ensure_index()
        hits = self.client.search(" ".join(args.query), k=args.k, mode=args.mode)
        import pandas as pd

        frame = pd.DataFrame([{"citation": h.citation, "symbol": h.symbol, "kind": h.kind, "score": h.score,
                               "path": h.path, "start_line": h.start_line, "end_line": h.end_line,
                               "signature": h.signature} for h in hits],
                             columns=["citation", "symbol", "kind", "score", "path", "start_line", "end_line",
                                      "signature"])
        return frame

    def _cmd_graph(self, rest: str):
        args = self._args("graph", rest)
        self._ensure_index()
        direction = "callers" if args.callers else "callees" if args.callees else "both"
        result = self.client.graph(args.symbol.lstrip("@"), direction=direction, depth=args.depth,
                                   max_nodes=args.max_nodes, code=True)
        from .widgets.graph import mime_bundle

        display(mime_bundle(result, code=result.code), raw=True)
        return None

    def _cmd_index(self, rest: str):
        args = self._args("index", rest)
        report = self.client.index(progress=True)
        print(f"DirEng: indexed {report.root}: {report.added} added, {report.modified} modified, "
              f"{report.deleted} deleted, {report.unchanged} unchanged in {report.seconds:.2f}s", file=sys.stderr)
        if args.watch:
            if getattr(self.client, "transport", "") != "in-process":
                print("DirEng: the server's refresh daemon already keeps this index fresh", file=sys.stderr)
            elif self._daemon is None:
                self._daemon = self.client.watch()
                print("DirEng: watching for changes in the background", file=sys.stderr)
        return None

    def _cmd_status(self, rest: str):
        st = self.client.status()
        display(Markdown(f"**DirEng index** ({self.client.transport}) of {st.summary()}"))
        return None

    def _cmd_reset(self, rest: str):
        self.client.reset(self.session)
        print("DirEng: conversation memory cleared", file=sys.stderr)

    def _cmd_history(self, rest: str):
        import pandas as pd

        return pd.DataFrame([{"role": m.role, "content": m.content} for m in self.client.history(self.session)],
                            columns=["role", "content"])

    def _cmd_explain_error(self, rest: str):
        etype, value, tb = getattr(sys, "last_type", None), getattr(sys, "last_value", None), \
            getattr(sys, "last_traceback", None)
        if value is None:
            raise UsageError("no exception to explain yet: run a cell that fails first")
        self._ensure_index()
        root = Path(self.client.root or os.getcwd()).resolve()
        frames = []
        for fs in traceback.extract_tb(tb):
            try:
                rel = Path(fs.filename).resolve().relative_to(root).as_posix()
            except ValueError:
                continue
            frames.append((rel, fs.lineno, fs.name))
        question = f"{etype.__name__}: {value}" + (f" in {frames[-1][2]}" if frames else "")
        # the failing cell is the one run before this one; its traceback rides in the context's error
        raw = getattr(getattr(self.shell, "history_manager", None), "input_hist_raw", None) or []
        answer = self.client.chat(question, self.session, self.context(raw[-2] if len(raw) >= 2 else None))
        lines = [f"**{etype.__name__}**: `{value}`"]
        if frames:
            lines.append("Frames in this repository (innermost last):")
            lines += [f"- `{name}` at `{path}:{line}`" for path, line, name in frames]
        lines.append("What the index knows about it:\n\n" + answer.markdown)
        display(Markdown("\n\n".join(lines)))
        return None

    def _cmd_delegate(self, rest: str):
        """Estimate, approve (button, or --yes), run and follow a task in a lane."""
        args = self._args("delegate", rest)
        brief = " ".join(args.brief)
        from .widgets.delegate import Delegation

        self.last_delegation = Delegation(self.client, brief, lane=args.lane, title=args.title,
                                          parameters=parse_params(args.param), timeout=args.timeout)
        return self.last_delegation.show(auto_approve=args.yes)

    def _cmd_context(self, rest: str):
        """Show what is sent with each message; `on`/`off` turns sending it on or off."""
        word = rest.strip().lower()
        if word in ("on", "off"):
            self.send_context = word == "on"
            print(f"DirEng: the notebook context is {'sent' if self.send_context else 'not sent'} with messages",
                  file=sys.stderr)
            return None
        if word:
            raise UsageError(f"context takes on or off, not {word!r}\n{USAGE}")
        if not self.send_context:
            display(Markdown("The notebook context is **off**: nothing but the message is sent "
                             "(`%direng context on` to send it)."))
            return None
        ctx = notebook_context(self.shell)
        display(Markdown("Sent with each message (no values; `%direng context off` to stop):\n\n```json\n"
                         + ctx.model_dump_json(indent=2, exclude_defaults=True) + "\n```"))
        return None

    def _cmd_proposals(self, rest: str):
        """The edits DirEng proposed, newest first, as a DataFrame."""
        import pandas as pd

        return pd.DataFrame([{"id": p.id, "state": p.state, "kind": p.kind, "path": p.path, "cell": p.cell,
                              "task_id": p.task_id, "provider": p.provider, "created_at": p.created_at}
                             for p in self.client.proposals()],
                            columns=["id", "state", "kind", "path", "cell", "task_id", "provider", "created_at"])

    def _cmd_apply(self, rest: str):
        return self._decide(rest, "apply")

    def _cmd_reject(self, rest: str):
        return self._decide(rest, "reject")

    def _decide(self, rest: str, action: str):
        proposal_id = rest.strip()
        if not proposal_id:
            raise UsageError(f"{action} needs a proposal id (see %direng proposals)\n{USAGE}")
        p = self.client.proposal_action(proposal_id, action)
        where = f"cell {p.cell} of {p.path}" if p.kind == "cell" else ", ".join(p.paths)
        display(Markdown(f"Proposal `{p.id}` **{p.state}**: {where}."
                         + (" Reload the notebook to see the new cell." if p.kind == "cell" and action == "apply" else "")))
        return None

    def _cmd_runs(self, rest: str):
        return runs_frame(self.client.runs())

    def _cmd_plms(self, rest: str):
        """PLMS's calibration: the figure inline (per lane, predicted p50/p90 against the actual
        durations, and the p90 coverage over time with the drift alarms), then the table."""
        import io

        from IPython.display import Image

        from .plms.calibration import calibration_report
        from .plms.history import read_history
        from .plms.plot import figure

        records = read_history(self.client.plms_history()).records  # corrupt rows skipped (logged)
        png = io.BytesIO()
        figure(records).savefig(png, format="png", dpi=90)
        display(Image(png.getvalue(), format="png"))
        return calibration_report(records)

    # -- cell magic -------------------------------------------------------------
    def _cell(self, line: str, cell: str):
        args = self._args("cell", line)
        prompt = self.shell.var_expand(cell) if self.shell else cell
        self._ensure_index()
        answer = self.client.chat(prompt, args.session or self.session, self.context(cell))
        if args.format == "json":
            return answer.model_dump(mode="json")
        if args.format == "code":
            blocks = CODE_BLOCK.findall(answer.markdown)
            code = "\n\n".join(b.rstrip() for b in blocks) if blocks else answer.markdown
            self.shell.set_next_input(code, replace=False)
            return None
        return self._show(answer)

    def _show(self, answer):
        for notice in answer.notices:
            print(f"DirEng: {notice}", file=sys.stderr)
        if answer.proposed_task is not None:  # large work: the proposal with its Approve button
            from .widgets.delegate import Delegation

            display(Markdown(answer.markdown))
            Delegation.for_task(self.client, answer.proposed_task).buttons()
            return None
        display(Markdown(answer.markdown))
        return None


_LINE_MAGIC = re.compile(r"^(\s*)(?:([\w.\[\]\s,]+?)\s*=\s*)?%direng\b(.*)$")


def protect_questions(lines: list[str]) -> list[str]:
    """Run `%direng …` lines as explicit calls, so IPython's `name?` help syntax cannot eat a question.

    `%direng ask is this thread-safe?` would otherwise become a request for help on `thread`.
    """
    out = []
    for line in lines:
        m = _LINE_MAGIC.match(line.rstrip("\n"))
        if m and line.rstrip().endswith("?"):
            indent, target, rest = m.groups()
            call = f"get_ipython().run_line_magic('direng', {rest.strip()!r})"
            line = f"{indent}{target + ' = ' if target else ''}{call}\n"
        out.append(line)
    return out


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(DirEngMagics(ipython))
    if protect_questions not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(protect_questions)
