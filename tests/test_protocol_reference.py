"""docs/protocol.md shows the tables HELP answers from (protocol/reference.py), covers every
command and error code, and states the txn rule in the same words as README."""

from __future__ import annotations

import re
from pathlib import Path

from protocol import reference
from protocol.errors import ErrorCode
from protocol.parser import _BUILDERS

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "protocol.md").read_text()
README = (ROOT / "README.md").read_text()


def generated_block(name: str) -> str:
    m = re.search(rf"<!-- {name}: [^\n]*-->\n(.*?)\n<!-- end of {name} -->", DOC, re.S)
    assert m, f"docs/protocol.md lost its generated {name} block"
    return m.group(1)


def test_the_docs_show_the_command_table_help_answers_from():
    assert generated_block("commands") == reference.markdown_commands(), (
        "regenerate the block from protocol.reference.markdown_commands()")


def test_the_docs_show_the_error_table():
    assert generated_block("errors") == reference.markdown_errors()


def test_every_command_the_parser_knows_has_help():
    assert sorted(h.name for h in reference.COMMANDS) == sorted(_BUILDERS)


def test_every_error_code_is_explained():
    assert [code for code, _ in reference.ERRORS] == list(ErrorCode)


def test_readme_and_the_docs_state_the_txn_rule_in_the_same_paragraph():
    def paragraph(text: str) -> str:
        m = re.search(r"\*\*Txns\.\*\*(.*?)\n\n", text, re.S)
        assert m, "the **Txns.** paragraph is missing"
        return " ".join(m.group(1).split())

    assert paragraph(README) == paragraph(DOC)


def test_readme_links_the_protocol_reference():
    assert "(docs/protocol.md)" in README
