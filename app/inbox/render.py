"""The inbox's Jinja2 templates: one environment, autoescaping everything, loaded from the package.

Templates live in `app/inbox/templates/` and ship in the wheel (see `package-data`), so an offline
deployment needs nothing else. `StrictUndefined` turns a misspelt variable into an error in tests
rather than an empty string in production.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from app import __version__
from app.inbox import present


class Templates:
    def __init__(self, *, prefix: str) -> None:
        """`prefix`: the inbox's path as the browser sees it (e.g. `/inbox`, or `/airlock/inbox` behind a proxy)."""
        self._env = Environment(loader=PackageLoader("app.inbox", "templates"), autoescape=True,
                                undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self._env.globals.update(prefix=prefix, version=__version__, present=present, current=None)

    def fragment(self, template: str, /, **context: Any) -> str:
        return self._env.get_template(template).render(**context)

    def page(self, template: str, /, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.fragment(template, **context), status_code=status_code)
