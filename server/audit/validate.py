"""Check a DUMPLOG file against the course schema (protocol/logfile.xsd) with lxml.

A first pass validates while streaming, clearing each event once read, so no tree of the log is
built (libxml2's streaming validator still keeps ~100 bytes per event: ~120 MB for 1M events).
Only when that pass fails, and the file is small enough to hold as a tree, does a second pass
collect every error with its line number.
"""

from __future__ import annotations

import os
from pathlib import Path

from lxml import etree

from protocol.logfile import log_schema

#: Files up to this size get a full error list with line numbers when they fail.
FULL_REPORT_MAX_BYTES = 64 * 1024 * 1024
MAX_ERRORS = 100


def validate_log(path: str | os.PathLike[str], *, max_errors: int = MAX_ERRORS) -> list[str]:
    """Schema and well-formedness errors in the log at `path`; an empty list when it is valid."""
    path = Path(path)
    streamed = _stream_validate(path)
    if streamed is None:
        return []
    try:
        if path.stat().st_size > FULL_REPORT_MAX_BYTES:
            return [streamed]
    except OSError:
        return [streamed]
    return _full_validate(path, max_errors) or [streamed]


def _stream_validate(path: Path) -> str | None:
    """None when valid, else the first error (libxml2's streaming validator stops there)."""
    schema = log_schema()
    events = 0
    root_closed = False
    try:
        # resolve_entities=False is left out on purpose: with a schema, lxml 6.0 then accepts a
        # truncated file. Internal entities only (lxml's default) and no network: no XXE.
        for _, element in etree.iterparse(str(path), events=("end",), schema=schema,
                                          huge_tree=True, no_network=True):
            parent = element.getparent()
            if parent is None:
                root_closed = True
            elif parent.getparent() is None:
                # A finished event: drop it and its finished siblings, so no tree builds up.
                events += 1
                element.clear()
                while element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        # libxml2 parses ahead of the events iterparse hands out: the count is approximate.
        return f"{exc.msg} (stopped near event {events + 1})"
    except OSError as exc:
        return f"cannot read {path}: {exc}"
    if not root_closed:  # belt and braces: never call a truncated file valid
        return f"the document ends before </log> (after {events} events)"
    return None


def _full_validate(path: Path, max_errors: int) -> list[str]:
    parser = etree.XMLParser(huge_tree=True, no_network=True)
    try:
        tree = etree.parse(str(path), parser)
    except etree.XMLSyntaxError as exc:
        return [f"line {exc.lineno}: {exc.msg}"]
    schema = log_schema()
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in list(schema.error_log)[:max_errors]]
