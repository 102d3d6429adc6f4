"""A fake Slack on a loopback port: the Web API Airlock talks to, and a reviewer who clicks.

One copy serves two users:

- Tests (`FakeSlack`): the real `slack_sdk` `AsyncWebClient` talks to it. It routes `/api/{method}`,
  checks the bot token, records every call as `(method, headers, body)`, and answers from a
  per-method script of `Reply` values, else as Slack would for the methods Airlock uses
  (`chat.postMessage` assigns a `ts`, `usergroups.users.list` lists `usergroups[id]`). It keeps the
  latest text and blocks of each message, so tests can read what a channel shows.
  `fail_all(reply)` makes every call fail (Slack down) until `recover()`; a `Reply.hang()` holds the
  request open until `recover()` or shutdown, the way an unreachable Slack leaves the client waiting.
- The demo (`airlock demo --fake-slack`, or `python -m app.demo.fake_slack serve`): given a
  `Workspace` (the signing secret, Airlock's URL, and the one user who clicks), `click()` sends
  Airlock the requests Slack would send for a click on an approval's message, signed with the
  signing secret: a `block_actions` payload for Approve or Reject and, for Reject, the
  `view_submission` of the reason modal Airlock opened with `views.open`. A page at `/` shows the
  channel with the buttons; `python -m app.demo.fake_slack click APPROVAL_ID approve` clicks from
  a terminal. With `Workspace(socket=True)` (`airlock demo --fake-slack socket`) the same payloads
  go as Socket Mode envelopes to the connections Airlock opened, and the acks are the answers.
- Socket Mode (`fake_socket_mode.py`): `apps.connections.open` (checked against the app-level
  token) and the `/link/` WebSocket, served by the same app; tests reach it as `socket_mode`.

Boundary: only what Airlock uses. One workspace, one channel, one clicking user; no OAuth, no
Events API, no rendering of Block Kit beyond its text. Nothing here is part of the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import secrets
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, quote

import httpx2
import uvicorn
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from app.demo.fake_socket_mode import APP_TOKEN, LINK_PATH, FakeSocketMode
from app.slack.blocks import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REJECT_ACTION

BOT_TOKEN = "xoxb-airlock-test-token"
CLICK_PATH: Final = "/_demo/click"
INTERACTIONS_PATH: Final = "/slack/interactions"
DEFAULT_PORT: Final = 9200
VERDICTS: Final = ("approve", "reject")


@dataclass(frozen=True)
class Call:
    method: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False

    @classmethod
    def ok(cls, **data: Any) -> Reply:
        return cls(body={"ok": True, **data})

    @classmethod
    def error(cls, error: str, status: int = 200) -> Reply:
        return cls(status=status, body={"ok": False, "error": error})

    @classmethod
    def ratelimited(cls, retry_after: int) -> Reply:
        return cls(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(retry_after)})

    @classmethod
    def server_error(cls, status: int = 503) -> Reply:
        return cls(status=status, body=None)

    @classmethod
    def hanging(cls) -> Reply:
        return cls(hang=True)


@dataclass(frozen=True)
class Workspace:
    """The Slack side of a demo: the app, the workspace, the channel, who clicks, and where Airlock is."""

    airlock_url: str
    signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    app_id: str = "A0DEMO"
    team_id: str = "T0DEMO"
    channel: str = "C0APPROVALS"
    user: str = "U0DEMO"
    socket: bool = False
    """Deliver clicks over Socket Mode (to the connections Airlock opened) instead of signed HTTP."""

    def environment(self, api_url: str, reviewer: str) -> dict[str, str]:
        """The `SLACK_*` variables that point Airlock at this workspace, with `user` as `reviewer`."""
        inbound = (
            {"SLACK_MODE": "socket", "AIRLOCK_SLACK_APP_TOKEN": APP_TOKEN}
            if self.socket
            else {"SLACK_SIGNING_SECRET": self.signing_secret}
        )
        return {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            **inbound,
            "SLACK_APP_ID": self.app_id,
            "SLACK_TEAM_IDS": self.team_id,
            "SLACK_DEFAULT_CHANNEL": self.channel,
            "SLACK_API_URL": api_url,
            "SLACK_REVIEWERS": f"{self.user}={reviewer}",
        }


class FakeSlack:
    def __init__(self, workspace: Workspace | None = None) -> None:
        self.url = ""
        self.workspace = workspace
        self._socket: socket.socket | None = None
        self.calls: list[Call] = []
        self.usergroups: dict[str, list[str]] = {}
        self.emails: dict[str, str] = {}
        """The e-mail on each user's profile (`users.info`)."""
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._scripts: dict[str, deque[Reply]] = {}
        self._failing: Reply | None = None
        self._recovered = asyncio.Event()
        self._called = asyncio.Condition()
        self._next_ts = 0
        self.socket_mode = FakeSocketMode()
        routes: list[BaseRoute] = [
            Route("/api/{method}", self._handle, methods=["GET", "POST"]),
            WebSocketRoute(LINK_PATH, self.socket_mode.endpoint),
        ]
        if workspace is not None:
            routes += [Route("/", self._page), Route(CLICK_PATH, self._click_form, methods=["POST"])]
        self.app = Starlette(routes=routes)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def script(self, method: str, *replies: Reply) -> None:
        """Answer the next calls to `method` with `replies`, in order (then as usual)."""
        self._scripts.setdefault(method, deque()).extend(replies)

    def fail_all(self, reply: Reply) -> None:
        """Answer every call with `reply` until `recover()`."""
        self._failing = reply
        self._recovered.clear()

    def recover(self) -> None:
        self._failing = None
        self._recovered.set()

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The latest `chat.postMessage` / `chat.update` body of one message."""
        return self.messages[(channel, ts)]

    async def _handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        body = await _body(request)
        self.calls.append(Call(method, dict(request.headers), body, time.monotonic()))
        async with self._called:
            self._called.notify_all()
        if method == "apps.connections.open":
            return await self._open_socket(request)
        if request.headers.get("authorization") != f"Bearer {BOT_TOKEN}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        reply = self._failing or self._next_scripted(method)
        if reply is None:
            return JSONResponse(self._default(method, body))
        return await self._scripted(reply)

    async def _scripted(self, reply: Reply) -> Response:
        if reply.hang:
            await self._recovered.wait()
            return Response(status_code=503)
        if reply.body is None:
            return Response(
                "<html>Slack is down</html>", status_code=reply.status, headers=reply.headers, media_type="text/html"
            )
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    async def _open_socket(self, request: Request) -> Response:
        """`apps.connections.open`, authorised by the app-level token (not the bot token)."""
        reply = self._failing or self._next_scripted("apps.connections.open")
        if reply is not None:
            return await self._scripted(reply)
        ws_base = "ws" + str(request.base_url).rstrip("/").removeprefix("http")
        return JSONResponse(await self.socket_mode.open_connection(request.headers, ws_base))

    def _next_scripted(self, method: str) -> Reply | None:
        queue = self._scripts.get(method)
        return queue.popleft() if queue else None

    def _default(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            self._next_ts += 1
            ts = f"{1_700_000_000 + self._next_ts}.{self._next_ts:06d}"
            channel = str(body["channel"])
            self.messages[(channel, ts)] = body
            return {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts, "text": body.get("text")}}
        if method == "chat.update":
            key = (str(body["channel"]), str(body["ts"]))
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = body
            return {"ok": True, "channel": key[0], "ts": key[1]}
        if method == "usergroups.users.list":
            group = str(body.get("usergroup", ""))
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.usergroups[group]}
        if method == "users.info":
            user = str(body.get("user", ""))
            profile = {"email": self.emails[user]} if user in self.emails else {}
            return {"ok": True, "user": {"id": user, "profile": profile}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        return {"ok": True}

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> socket.socket:
        """Bind the socket `serving()` will use and set `url`, so the URL is known before serving.

        Port 0 picks a free port.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        self._socket = sock
        return sock

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeSlack]:
        """Serve on the socket of an earlier `bind()` (else a free loopback port) until the block ends."""
        sock = self._socket or self.bind()
        server = uvicorn.Server(
            uvicorn.Config(
                self.app, log_level="warning", lifespan="off", ws="websockets-sansio", timeout_graceful_shutdown=1
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(10):
                while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn.Server has no start event
                    await asyncio.sleep(0.01)
            if task.done():
                task.result()  # surface the start-up failure
            yield self
        finally:
            self.recover()  # let hanging requests finish so the server can stop
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
            sock.close()

    # ----------------------------------------------------------------- the demo's clicking user

    async def click(self, approval_id: str, verdict: str, reason: str = "") -> str:
        """Click Approve or Reject on the approval's message, as the workspace's user; say what happened.

        Raises:
            ValueError: No workspace, an unknown verdict, or a rejection without a reason.
        """
        if self.workspace is None or verdict not in VERDICTS:
            raise ValueError("clicking needs a workspace and a verdict of approve or reject")
        if verdict == "reject" and not reason.strip():
            raise ValueError("a rejection needs a reason")
        found = self._buttons_of(approval_id)
        if found is None:
            return f"no message with buttons for {approval_id} (not posted yet, or already decided)"
        channel, ts = found
        trigger = f"{time.time():.6f}.{secrets.token_hex(4)}"
        status, text = await self._interact(_click_payload(self.workspace, approval_id, verdict, channel, ts, trigger))
        if verdict == "approve" or status != 200:
            return f"{verdict} {approval_id}: Airlock answered {status} {text}".strip()
        view = await self._view_opened(trigger)
        if view is None:
            return f"reject {approval_id}: Airlock opened no reason form (see its log)"
        status, text = await self._interact(_reason_payload(self.workspace, view, reason))
        if "response_action" in text:  # Airlock kept the form open with an error
            return f"reject {approval_id}: Airlock refused the reason: {text}"
        return f"reject {approval_id} ({reason}): Airlock answered {status} {text}".strip()

    def _buttons_of(self, approval_id: str) -> tuple[str, str] | None:
        for (channel, ts), body in self.messages.items():
            for block in _blocks(body):
                if block.get("type") == "actions" and any(e.get("value") == approval_id for e in block["elements"]):
                    return channel, ts
        return None

    async def _view_opened(self, trigger_id: str, *, timeout: float = 5) -> dict[str, Any] | None:
        """The modal Airlock opened for `trigger_id`, waiting for it: over Socket Mode the click is
        acknowledged before Airlock calls `views.open`; over HTTP it was called before the answer."""
        if self.workspace is None or not self.workspace.socket:
            return self._view_of(trigger_id)
        try:
            async with asyncio.timeout(timeout), self._called:
                await self._called.wait_for(lambda: self._view_of(trigger_id) is not None)
        except TimeoutError:
            return None
        return self._view_of(trigger_id)

    def _view_of(self, trigger_id: str) -> dict[str, Any] | None:
        for call in reversed(self.calls_to("views.open")):
            if call.body.get("trigger_id") == trigger_id:
                view = call.body.get("view")
                parsed: dict[str, Any] | None = json.loads(view) if isinstance(view, str) else view
                return parsed
        return None

    async def _interact(self, payload: dict[str, Any]) -> tuple[int, str]:
        """Send Airlock an interaction as Slack would; its answer as (HTTP status, body).

        Over Socket Mode the answer is the ack: 200 and its payload, if any.
        """
        assert self.workspace is not None
        if self.workspace.socket:
            return await self._deliver(payload)
        body = ("payload=" + quote(json.dumps(payload))).encode()
        stamp = str(int(time.time()))
        signature = SignatureVerifier(self.workspace.signing_secret).generate_signature(timestamp=stamp, body=body)
        headers = {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(signature),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        async with httpx2.AsyncClient(timeout=10) as http:
            answer = await http.post(self.workspace.airlock_url + INTERACTIONS_PATH, content=body, headers=headers)
        return answer.status_code, answer.text

    async def _deliver(self, payload: dict[str, Any]) -> tuple[int, str]:
        try:
            envelope = await self.socket_mode.send(payload)
            ack = await self.socket_mode.ack(envelope, timeout=10)
        except (RuntimeError, TimeoutError):
            return 503, "(no answer over Socket Mode: is Airlock connected?)"
        return 200, json.dumps(ack.payload) if ack.payload else ""

    async def _click_form(self, request: Request) -> Response:
        form = await request.form()
        try:
            said = await self.click(
                str(form.get("approval", "")), str(form.get("verdict", "")), str(form.get("reason", ""))
            )
        except ValueError as exc:
            said = str(exc)
        if form.get("from_page"):
            return RedirectResponse(f"/?said={quote(said)}", status_code=303)
        return PlainTextResponse(said + "\n")

    async def _page(self, request: Request) -> HTMLResponse:
        said = request.query_params.get("said", "")
        items = "".join(_message_html(body) for body in reversed(list(self.messages.values())))
        return HTMLResponse(_PAGE.format(said=html.escape(said), items=items or "<p>No messages yet.</p>"))


async def _body(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        return {key: values[-1] for key, values in parse_qs(request.url.query).items()}
    raw = await request.body()
    if raw.startswith(b"{"):
        parsed: dict[str, Any] = json.loads(raw)
        return parsed
    return {key: values[-1] for key, values in parse_qs(raw.decode()).items()}


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = body.get("blocks") or []
    parsed: list[dict[str, Any]] = json.loads(blocks) if isinstance(blocks, str) else blocks
    return parsed


def _click_payload(
    workspace: Workspace, approval_id: str, verdict: str, channel: str, ts: str, trigger_id: str
) -> dict[str, Any]:
    """A `block_actions` payload for a click on the approval's message, shaped like Slack's."""
    action_id = APPROVE_ACTION if verdict == "approve" else REJECT_ACTION
    return {
        "type": "block_actions",
        "api_app_id": workspace.app_id,
        "trigger_id": trigger_id,
        "user": {"id": workspace.user, "username": "demo", "name": "demo", "team_id": workspace.team_id},
        "team": {"id": workspace.team_id, "domain": "demo"},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "approvals"},
        "message": {"type": "message", "ts": ts},
        "actions": [
            {"action_id": action_id, "value": approval_id, "type": "button", "action_ts": f"{time.time():.6f}"}
        ],
    }


def _reason_payload(workspace: Workspace, view: dict[str, Any], reason: str) -> dict[str, Any]:
    """The `view_submission` of the reason modal Airlock opened, with `reason` typed in."""
    values = {REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input", "value": reason}}}
    return {
        "type": "view_submission",
        "api_app_id": workspace.app_id,
        "team": {"id": workspace.team_id},
        "user": {"id": workspace.user, "username": "demo", "name": "demo", "team_id": workspace.team_id},
        "view": {**view, "id": "V0DEMO", "team_id": workspace.team_id, "state": {"values": values}},
    }


def _message_html(body: dict[str, Any]) -> str:
    texts = [str(block["text"].get("text", "")) for block in _blocks(body) if isinstance(block.get("text"), dict)]
    texts += [str(f.get("text", "")) for block in _blocks(body) for f in block.get("fields") or []]
    buttons = [e.get("value") for block in _blocks(body) if block.get("type") == "actions" for e in block["elements"]]
    form = ""
    if buttons:
        approval = html.escape(str(buttons[0]), quote=True)
        form = (
            f'<form method="post" action="{CLICK_PATH}"><input type="hidden" name="from_page" value="1">'
            f'<input type="hidden" name="approval" value="{approval}">'
            '<button name="verdict" value="approve">Approve</button> '
            '<input name="reason" placeholder="reason (to reject)"> '
            '<button name="verdict" value="reject">Reject</button></form>'
        )
    lines = "\n".join(html.escape(text) for text in texts if text)
    return f"<article><p>{lines}</p>{form}</article>"


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fake Slack: #approvals</title>
<style>body{{font:15px system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}}
article{{border:1px solid #ccc;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}}
article p{{white-space:pre-wrap}}
.said{{background:#eef;padding:.5rem}}</style></head>
<body><h1>#approvals <small>(fake Slack, for the Airlock demo)</small></h1>
<p class="said">{said}</p><p><a href="/">Reload</a> to see Airlock's updates.</p>{items}</body></html>
"""


# --------------------------------------------------------------------------- command line


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.demo.fake_slack", description="A fake Slack for trying Airlock's Slack approvals locally."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the fake Slack (prints the SLACK_* variables for Airlock)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (default: %(default)s)")
    serve.add_argument("--airlock", default="http://127.0.0.1:8080", help="Airlock's URL (default: %(default)s)")
    serve.add_argument(
        "--reviewer", default="demo-reviewer", help="the Airlock reviewer the clicking user is (default: %(default)s)"
    )
    serve.add_argument(
        "--socket", action="store_true", help="deliver clicks over Socket Mode (Airlock connects; no signed HTTP)"
    )
    click = commands.add_parser("click", help="click Approve or Reject on an approval's message")
    click.add_argument("approval_id")
    click.add_argument("verdict", choices=VERDICTS)
    click.add_argument("--reason", default="", help="why (required to reject)")
    click.add_argument(
        "--slack", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="the fake Slack's URL (default: %(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.command == "click":
        form = {"approval": args.approval_id, "verdict": args.verdict, "reason": args.reason}
        try:
            answer = httpx2.post(args.slack + CLICK_PATH, data=form, timeout=15)
        except httpx2.HTTPError as exc:
            sys.exit(f"cannot reach the fake Slack at {args.slack}: {exc}")
        print(answer.text.strip())
        sys.exit(0 if "answered 200" in answer.text else 1)
    workspace = Workspace(
        airlock_url=args.airlock.rstrip("/"),
        signing_secret=os.environ.get("SLACK_SIGNING_SECRET") or secrets.token_hex(16),
        socket=args.socket,
    )
    url = f"http://127.0.0.1:{args.port}"
    print(
        "Start Airlock with:\n"
        + "".join(
            f"  export {key}={value}\n" for key, value in workspace.environment(f"{url}/api/", args.reviewer).items()
        )
    )
    print(f"The channel, with buttons: {url}/", flush=True)
    uvicorn.run(FakeSlack(workspace).app, host="127.0.0.1", port=args.port, log_level="warning", ws="websockets-sansio")


if __name__ == "__main__":
    main()
