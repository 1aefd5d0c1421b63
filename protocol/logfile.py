"""The DUMPLOG file's format: the schema (logfile.xsd, packaged beside this module) that the
server's dumps and the bench's checks of them both validate against."""

from __future__ import annotations

import functools
import importlib.resources

from lxml import etree


@functools.cache
def log_schema() -> etree.XMLSchema:
    """The packaged logfile.xsd, parsed once."""
    source = importlib.resources.files("protocol").joinpath("logfile.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(source))
