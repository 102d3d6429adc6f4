"""`airlock policy check`/`explain` list a stdio upstream's tools by starting it for the probe alone.

Provenance: Airlock-defined (issue 14, item 1: "everything else works exactly as for HTTP upstreams").
"""

from __future__ import annotations

from pathlib import Path

from app.config import StdioSettings, UpstreamSettings
from app.policy.probe import fetch_tools
from tests.npmservers import npm_server


async def test_the_probe_lists_a_stdio_upstreams_tools_and_leaves_no_process_behind(sandbox: Path) -> None:
    command = (str(npm_server("@modelcontextprotocol/server-filesystem")), str(sandbox))
    settings = UpstreamSettings(name="files", url="", policy=sandbox / "p.json", stdio=StdioSettings(command=command))
    catalog = await fetch_tools(settings)
    assert "read_text_file" in catalog.annotations
    assert catalog.annotations["read_text_file"] == {"readOnlyHint": True, "openWorldHint": False}
    assert processes_naming(str(sandbox)) == []


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line mentions `text` (the sandbox path is only on the server's)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found
