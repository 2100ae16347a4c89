"""`direng ask` and `direng chat`: DirEng on a terminal.

`ask` answers one message and exits: the Markdown rendered by rich (a generative answer is shown
live while it streams), then the sources it cites; `--json` prints the whole `Answer` (markdown,
citations, proposed_task, provider, usages, notices) for scripts. `chat` is a loop over stdin
with one conversation (`--session`, memory kept by the engine) and readline history when the
terminal has it; an empty line is skipped, `exit`, `quit` or end of input (Ctrl-D) leaves.
Large work comes back as a proposed task, approved with `direng task approve ID`.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import DirEngError
from ..models import Answer
from .commands import _console, _print_json, client_for

PROMPT = "direng> "


def add_parsers(sub, add_root) -> None:
    p = sub.add_parser("ask", help="ask DirEng one question (or hand it work) and print the answer")
    p.add_argument("message", metavar="MESSAGE", nargs="+", help="the question, command or request")
    add_root(p)
    p.add_argument("--session", default="cli", help="conversation memory key (default: cli)")
    p.add_argument("--json", action="store_true", help="print the Answer as JSON")
    p.set_defaults(run=cmd_ask)

    p = sub.add_parser("chat", help="an interactive conversation with DirEng (Ctrl-D to leave)")
    add_root(p)
    p.add_argument("--session", default="cli", help="conversation memory key (default: cli)")
    p.set_defaults(run=cmd_chat)


def _live_answer(client, message: str, session: str, console) -> Answer:
    """The answer, shown while it streams when the terminal can redraw (rich's Live)."""
    if not console.is_terminal:
        return client.chat(message, session)
    from rich.live import Live
    from rich.markdown import Markdown

    text = ""
    with Live(console=console, refresh_per_second=8, transient=True) as live:
        def on_event(kind: str, payload: dict) -> None:
            nonlocal text
            if kind == "delta":
                text += payload.get("text", "")
            elif kind == "replace":
                text = payload.get("text", "")
            elif kind == "reset":
                text = ""
            live.update(Markdown(text or (f"*using {payload.get('name', 'a tool')}…*" if kind == "tool" else "")))

        return client.chat(message, session, on_event=on_event)


def print_answer(answer: Answer, console) -> None:
    from rich.markdown import Markdown

    console.print(Markdown(answer.markdown))
    cited = list(dict.fromkeys(h.citation for h in answer.citations))
    if cited:
        console.print("[dim]sources:[/dim] " + ", ".join(cited[:20]), highlight=False)
    for notice in answer.notices:
        console.print(f"[yellow]notice:[/yellow] {notice}", highlight=False)


def cmd_ask(args: argparse.Namespace) -> int:
    client = client_for(args)
    message = " ".join(args.message)
    if args.json:
        _print_json(client.chat(message, args.session).model_dump(mode="json"))
        return 0
    console = _console()
    print_answer(_live_answer(client, message, args.session, console), console)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    client = client_for(args)
    console = _console()
    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401 — input() gets line editing and Up/Down history
        except ImportError:
            pass
        console.print("DirEng: ask about this repository; `help` lists what I do, Ctrl-D leaves.", highlight=False)
    while True:
        try:
            line = input(PROMPT if interactive else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            console.print()
            continue
        message = line.strip()
        if not message:
            continue
        if message in ("exit", "quit"):
            break
        try:
            print_answer(_live_answer(client, message, args.session, console), console)
        except DirEngError as exc:  # one bad message does not end the conversation
            console.print(f"[red]direng:[/red] {exc}", highlight=False)
    return 0
