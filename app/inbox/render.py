"""The inbox's Jinja2 templates: one environment, autoescaping everything, loaded from the package.

Templates live in `app/inbox/templates/` and ship in the wheel (see `package-data`), so an offline
deployment needs nothing else. `StrictUndefined` turns a misspelt variable into an error in tests
rather than an empty string in production.

What reviewers read is what is there (`app/reveal.py`), on every page, the live feed's cards
included, in two layers:

- every `{{ … }}` output passes through `finalize`, which writes hidden characters (bidirectional
  overrides, zero-width spaces, …) as plain `\\u202e`-style escapes: nothing a template forgets
  can reach the page invisible, attributes and `<title>` included;
- the `reveal` filter, used where reviewers read agent-chosen text (tool, agent and upstream
  names, arguments, results, reasons, audit details), also marks each escape with
  `<span class="hidden-char">` and its character name, so it stands out from text that merely
  spells a backslash. Its output is `Markup`, which `finalize` leaves alone. Cut text *before*
  this filter (`| truncate(n) | reveal`), never after: truncating markup would cut a tag.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from app import __version__
from app.inbox import present
from app.reveal import escape_char, pieces, reveal

_MARK = Markup('<span class="hidden-char" title="{title}">{text}</span>')


def reveal_html(value: Any, line: bool = False) -> Markup:
    """`value` as HTML with each hidden character a visibly styled escape (see the module docstring)."""
    if isinstance(value, Markup):
        return value
    text = "" if value is None else str(value)
    return Markup("").join(
        _MARK.format(title=_title(piece), text=escape_char(piece)) if is_hidden else escape(piece)
        for piece, is_hidden in pieces(text, line=line)
    )


def reveal_output(value: Any) -> Any:
    """Jinja's `finalize`: plain escapes for any string a template did not already reveal."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return reveal(value)
    return value


def _title(char: str) -> str:
    return f"hidden character U+{ord(char):04X} {unicodedata.name(char, '')}".strip()


class Templates:
    def __init__(self, *, prefix: str) -> None:
        """`prefix`: the inbox's path as the browser sees it (e.g. `/inbox`, or `/airlock/inbox` behind a proxy)."""
        self._env = Environment(
            loader=PackageLoader("app.inbox", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=reveal_output,
        )
        self._env.globals.update(prefix=prefix, version=__version__, present=present, current=None)
        self._env.filters["reveal"] = reveal_html

    def fragment(self, template: str, /, **context: Any) -> str:
        return self._env.get_template(template).render(**context)

    def page(self, template: str, /, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.fragment(template, **context), status_code=status_code)
