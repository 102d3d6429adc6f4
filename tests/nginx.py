"""A real nginx in front of Airlock, configured exactly as docs/operations.md says.

Needs `/usr/sbin/nginx` (Debian's `nginx` package, which `.ci/run` installs): without it the tests
that use `require_nginx` skip, unless `CI` is set, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.net import free_port, wait_for

NGINX = Path("/usr/sbin/nginx")
OPERATIONS_DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def documented_config() -> str:
    """The nginx block docs/operations.md gives (the first ```nginx fence)."""
    match = re.search(r"```nginx\n(.*?)```", OPERATIONS_DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert match, "docs/operations.md has no ```nginx block"
    return match.group(1)


def nginx_conf(prefix: Path, *, listen_port: int, airlock_port: int) -> str:
    documented = documented_config()
    assert "server 127.0.0.1:8080;" in documented and "listen 80;" in documented
    site = documented.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{airlock_port};").replace(
        "listen 80;", f"listen 127.0.0.1:{listen_port};"
    )
    temp = {name: prefix / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    return f"""
daemon off;
master_process off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} notice;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{site}
}}
"""


@pytest.fixture
def require_nginx() -> None:
    if NGINX.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but there is no nginx at {NGINX}; install Debian's nginx (.ci/run does)")
    pytest.skip(f"no nginx at {NGINX}: install Debian's `nginx` package to run the reverse-proxy tests")


async def _accepts(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@asynccontextmanager
async def nginx_in_front_of(airlock_port: int, prefix: Path) -> AsyncIterator[str]:
    """Run nginx with the documented config in front of `airlock_port`; yields its base URL."""
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, listen_port=port, airlock_port=airlock_port), encoding="utf-8")
    with open(prefix / "stderr.log", "wb") as stderr:
        nginx = subprocess.Popen(
            [str(NGINX), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")], stderr=stderr
        )
    try:
        await wait_for(lambda: nginx.poll() is not None or _accepts(port), timeout=10, interval=0.05)
        assert nginx.poll() is None, (prefix / "error.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
