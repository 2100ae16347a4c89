"""Two readings of intent.py that search leans on, on a small repository indexed for real.

* A file's role: source code that lives in a docs folder (a Go `doc` package that generates
  manual pages) is code, not prose, so it is not demoted like the guide beside it.
* A type question: the type noun has to be what "which/what" asks for ("which struct…",
  "what is the type…"); "what happens to one log record…" is a question about behaviour, and
  its answer is the method doing it, not the struct the sentence mentions.
"""

from __future__ import annotations

import textwrap

import pytest

from conftest import commit_all, git
from direng_kernel.index.intent import asks_for_type, chunk_role, file_role
from direng_kernel.workbench import Workbench

FILES = {
    "command.go": '''
        package cli

        // Command is one node of a command tree: a name, its flags and its subcommands.
        type Command struct {
            Name     string
            Children []*Command
        }

        // Commands lists the subcommands of a command tree node.
        func (c *Command) Commands() []*Command {
            return c.Children
        }

        // Root walks up the command tree.
        func (c *Command) Root() *Command {
            return c
        }
        ''',
    "doc/man.go": '''
        package doc

        // GenManTree writes one manual page per command of a command tree.
        func GenManTree(cmd *Command, dir string) error {
            return writeManPages(cmd, dir)
        }

        // writeManPages renders the manual pages of a command and its children.
        func writeManPages(cmd *Command, dir string) error {
            return nil
        }
        ''',
    "docs/guide.md": '''
        # Guide

        A command tree can be turned into manual pages with GenManTree.
        ''',
    "entry.go": '''
        package logs

        // Entry is one log record: its fields, time, level and message.
        type Entry struct {
            Message string
            Level   int
        }

        // Hook is fired for every record written at one of its levels.
        type Hook interface {
            Fire(entry *Entry) error
        }

        // log handles one record: it is copied, timestamped, its hooks fire, then it is
        // written out; at the panic level it panics.
        func (entry *Entry) log(level int, msg string) {
            copied := *entry
            copied.Message = msg
            fireHooks(&copied)
            write(&copied)
        }

        func fireHooks(entry *Entry) {}

        func write(entry *Entry) {}
        ''',
}


@pytest.fixture(scope="module")
def wb(tmp_path_factory):
    root = tmp_path_factory.mktemp("roles") / "repo"
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "initial")
    w = Workbench(root)
    w.index()
    return w


def test_source_code_in_a_docs_folder_is_code_and_prose_stays_an_aside():
    assert file_role("doc/man.go") == "doc"  # by its path alone
    assert chunk_role("doc/man.go", True) == "code"  # parsed source: a Go package named doc
    assert chunk_role("docs/conf.py", True) == "code"
    assert chunk_role("docs/guide.md", False) == "doc"  # prose (a text chunk has no language)
    assert chunk_role("docs/tutorial.ipynb", True, cell=2) == "doc"  # a notebook is a tutorial
    assert chunk_role("tests/test_x.py", True) == "test"


def test_the_answer_opens_with_code_in_a_docs_folder_but_not_with_prose(wb):
    from direng_kernel.direng.compose import lead_first

    hits = wb.search("how are manual pages written for a command tree", k=5, dense=False)
    code = next(h for h in hits if h.path == "doc/man.go" and h.kind == "function")
    prose = next(h for h in wb.search("guide manual pages GenManTree", k=10, dense=False)
                 if h.path == "docs/guide.md")
    assert lead_first([code, *[h for h in hits if h is not code]])[0] is code
    assert lead_first([prose, code])[0] is code


def test_a_file_question_finds_the_generator_in_the_doc_package(wb):
    hits = wb.search("which file turns a command tree into manual pages", k=5, dense=False)
    assert hits[0].path == "doc/man.go"
    assert "docs/guide.md" not in [h.path for h in hits[:2]]  # the guide is still demoted


@pytest.mark.parametrize("query", [
    "which struct describes a command with its flags",
    "what is the type of the functions that validate arguments",
    "what interface do extensions implement",
    "which public trait lets callers customize the output",
    "what kind of data structure keeps the pending records",
    "what is the name of the class that wraps a socket",
    "which of the classes holds the session",
])
def test_type_questions(query):
    assert asks_for_type(query)


@pytest.mark.parametrize("query", [
    "what happens to one log record when it is written",  # the noun comes long after "what"
    "which file implements the map type that backs objects",  # asks for a file
    "how is the total computed",
])
def test_questions_that_only_mention_a_type_word(query):
    assert not asks_for_type(query)


def test_a_behaviour_question_naming_a_record_finds_the_method(wb):
    hits = wb.search("what happens to one log record: it is copied, timestamped, hooks fire and it is written",
                     k=5, dense=False)
    found = [h.symbol for h in hits if h.path == "entry.go"]
    # read as a type question, the struct and the interface were lifted over the method
    assert "Entry.log" in found[:2]
    assert found.index("Entry.log") < min(found.index(t) if t in found else len(found) for t in ("Entry", "Hook"))
