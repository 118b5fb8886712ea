"""The Jinja2 environment for ``ledger_tools/templates`` (report and explorer
pages), autoescaped, strict about undefined names."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2


@cache
def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
