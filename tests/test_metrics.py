"""Prometheus metrics at `/metrics`: the counters move by exactly the calls made, with bounded labels.

Provenance: Airlock-defined (issue 16, item 2): a real Airlock on loopback driven by the official
`mcp` client, scraped over HTTP and parsed with `prometheus_client`'s own parser.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.config import settings_from_document
from app.demo.upstream import DemoMarket
from app.errors import ConfigError
from app.metrics import MAX_TOOLS, Metrics
from tests.conftest import StartAirlock
from tests.harness import DEFAULT_POLICY, UPSTREAM, AirlockUnderTest, new_task, running_airlock, settings_for_test
from tests.net import free_port, wait_for
from tests.processes import Cluster
from tests.rawmcp import modern_envelope, modern_headers
from tests.webhook.conftest import with_webhook
from tests.webhook.receiver import Receiver

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(airlock: AirlockUnderTest) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{airlock.url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def calls(samples: Samples, tool: str, decision: str, outcome: str) -> float:
    return value(samples, "airlock_tool_calls_total", upstream=UPSTREAM, tool=tool, decision=decision, outcome=outcome)


async def test_the_counters_move_by_exactly_the_calls_made(airlock: AirlockUnderTest, market: DemoMarket) -> None:
    before = await scrape(airlock)
    task = new_task(market)
    async with airlock.client() as client:
        for _ in range(2):
            assert not (await client.call_tool("em_get_task", {"task_id": task.id})).is_error
        held = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "duplicate"}))
        approval = await airlock.wait_pending()
        during = await scrape(airlock)
        assert (await airlock.decide(approval["id"], "approve")).status_code == 200
        async with asyncio.timeout(10):
            assert not (await held).is_error
    async with airlock.client("intern-bot") as client:
        denied = await client.call_tool("em_publish_task", {"title": "t", "description": "d", "bounty_usd": 5})
        assert denied.is_error
    await airlock.wait_status(approval["id"], "completed")
    await wait_for(lambda: airlock.runtime.held.total() == 0)
    after = await scrape(airlock)

    assert value(during, "airlock_approvals_pending") == 1
    assert value(during, "airlock_held_requests") == 1
    assert value(after, "airlock_approvals_pending") == 0
    assert value(after, "airlock_held_requests") == 0
    moved = {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key[0].endswith("_total") and after[key] != before.get(key, 0.0)
    }
    assert moved == {
        (
            "airlock_tool_calls_total",
            frozenset({("upstream", UPSTREAM), ("tool", "em_get_task"), ("decision", "allow"), ("outcome", "ok")}),
        ): 2,
        (
            "airlock_tool_calls_total",
            frozenset(
                {("upstream", UPSTREAM), ("tool", "em_publish_task"), ("decision", "deny"), ("outcome", "refused")}
            ),
        ): 1,
        (
            "airlock_tool_calls_total",
            frozenset(
                {("upstream", UPSTREAM), ("tool", "em_cancel_task"), ("decision", "approve"), ("outcome", "parked")}
            ),
        ): 1,
        ("airlock_approvals_total", frozenset({("upstream", UPSTREAM), ("status", "completed")})): 1,
    }
    assert calls(after, "em_get_task", "allow", "ok") == 2
    decided = value(after, "airlock_approval_decision_seconds_count", upstream=UPSTREAM, verdict="approved")
    assert (
        decided - value(before, "airlock_approval_decision_seconds_count", upstream=UPSTREAM, verdict="approved") == 1
    )
    resulted = value(after, "airlock_approval_result_seconds_count", upstream=UPSTREAM, status="completed")
    assert resulted - value(before, "airlock_approval_result_seconds_count", upstream=UPSTREAM, status="completed") == 1
    count = value(after, "airlock_request_seconds_count", upstream=UPSTREAM, decision="allow")
    assert count - value(before, "airlock_request_seconds_count", upstream=UPSTREAM, decision="allow") == 2
    assert value(after, "airlock_request_seconds_sum", upstream=UPSTREAM, decision="allow") > 0


async def test_policy_reloads_are_counted_ok_and_failed(airlock: AirlockUnderTest) -> None:
    airlock.set_policy({**DEFAULT_POLICY, "hide": []})
    airlock.set_policy({"version": "1", "rules": [{"tool": "x", "acton": "allow"}]})
    airlock.runtime.policies.check_now()  # the same broken content again: logged and counted once
    samples = await scrape(airlock)
    assert value(samples, "airlock_policy_reloads_total", upstream=UPSTREAM, result="ok") == 1
    assert value(samples, "airlock_policy_reloads_total", upstream=UPSTREAM, result="failed") == 1


async def test_metrics_can_be_turned_off(start_airlock: StartAirlock) -> None:
    airlock = await start_airlock(metrics={"enabled": False})
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{airlock.url}/metrics")
    assert response.status_code == 404
    assert airlock.runtime.metrics is None


async def test_metrics_can_have_a_listener_of_their_own(start_airlock: StartAirlock, market: DemoMarket) -> None:
    port = free_port()
    airlock = await start_airlock(metrics={"listen": f"127.0.0.1:{port}"})
    async with airlock.client() as client:
        assert not (await client.call_tool("em_get_task", {"task_id": new_task(market).id})).is_error
    async with httpx.AsyncClient(timeout=10) as http:
        on_mcp_port = await http.get(f"{airlock.url}/metrics")
        own = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert on_mcp_port.status_code == 404, "not exposed on the MCP listener any more"
    assert own.status_code == 200 and own.headers["content-type"].startswith("text/plain")
    assert calls(parse(own.text), "em_get_task", "allow", "ok") == 1


async def test_airlock_serve_serves_metrics_on_the_listener_it_bound_first(
    tmp_path: Path, database_url: str, upstream_url: str
) -> None:
    cluster = await Cluster.create(
        tmp_path, database_url=database_url, upstream_url=upstream_url, policy=DEFAULT_POLICY, approvals={}
    )
    port = free_port()
    with cluster.config.open("a", encoding="utf-8") as config:
        config.write(f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    try:
        airlock = await cluster.start()
        async with httpx.AsyncClient(timeout=10) as http:
            own = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert own.status_code == 200 and "airlock_approvals_pending 0.0" in own.text
        assert f"metrics at http://127.0.0.1:{port}/metrics" in airlock.log.read_text(encoding="utf-8")
    finally:
        cluster.stop_all()


def test_labels_stay_bounded_whatever_the_agent_sends() -> None:
    metrics = Metrics()
    for index in range(MAX_TOOLS + 100):
        metrics.call("market", f"tool-{index}", "deny", "refused", 1.0)
    metrics.call("market", "x", "invalid", "Invalid params: 'arguments' must be an object", None)
    metrics.call("market", "em_get_task", "allow", "error -32602", 2.0)
    metrics.call("market", "em_cancel_task", "approve", "continues 01JABCDEF", 3.0)
    families = {
        family.name: family for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
    }
    samples = [s for s in families["airlock_tool_calls"].samples if s.name == "airlock_tool_calls_total"]
    tools = {s.labels["tool"] for s in samples}
    assert len(tools) == MAX_TOOLS + 1 and "other" in tools
    assert sum(s.value for s in samples if s.labels["tool"] == "other") == 100 + 3  # the cap was reached first
    assert {s.labels["outcome"] for s in samples} == {"refused", "invalid", "error", "continues"}


async def test_an_unreachable_upstream_is_counted_as_an_upstream_error(tmp_path: Path, database_url: str) -> None:
    settings = settings_for_test(tmp_path, f"http://127.0.0.1:{free_port()}/mcp", database_url)
    async with running_airlock(settings) as airlock:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "em_get_task", "arguments": {"task_id": "t"}, "_meta": modern_envelope()},
        }
        headers = modern_headers(await airlock.agent_token(), "tools/call", "em_get_task")
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(airlock.mcp_url, json=body, headers=headers)
        assert response.json()["result"]["isError"] is True
        samples = await scrape(airlock)
    assert value(samples, "airlock_upstream_errors_total", upstream=UPSTREAM, kind="unreachable") == 1
    assert calls(samples, "em_get_task", "allow", "upstream unreachable") == 1


async def test_undelivered_and_failing_channel_deliveries_are_gauges(
    tmp_path: Path, upstream_url: str, database_url: str, market: DemoMarket
) -> None:
    down = Receiver()  # its port refuses connections until started
    settings = with_webhook(settings_for_test(tmp_path, upstream_url, database_url), tmp_path, down.url)
    try:
        async with running_airlock(settings) as airlock:
            async with airlock.client() as client:
                held = asyncio.create_task(
                    client.call_tool("em_cancel_task", {"task_id": new_task(market).id, "reason": "dup"})
                )
                await airlock.wait_pending()

                async def failing() -> bool:
                    return value(await scrape(airlock), "airlock_outbox_failing", channel="webhook") == 1

                await wait_for(failing, timeout=10)
                samples = await scrape(airlock)
                assert value(samples, "airlock_outbox_pending", channel="webhook") == 1
                assert value(samples, "airlock_outbox_pending", channel="slack") == 0
                await down.start()

                async def delivered() -> bool:
                    return value(await scrape(airlock), "airlock_outbox_pending", channel="webhook") == 0

                await wait_for(delivered, timeout=10)
                assert value(await scrape(airlock), "airlock_outbox_failing", channel="webhook") == 0
                held.cancel()
    finally:
        await down.stop()


async def test_errors_the_database_raises_are_counted(airlock: AirlockUnderTest) -> None:
    before = value(await scrape(airlock), "airlock_database_errors_total")
    with pytest.raises(DBAPIError):
        async with airlock.runtime.db.read() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    assert value(await scrape(airlock), "airlock_database_errors_total") == before + 1


@pytest.mark.parametrize("listen", ["9464", "localhost", "127.0.0.1:0", "127.0.0.1:99999", ":9464", 9464])
def test_a_bad_metrics_listen_address_is_one_sentence(tmp_path: Path, listen: object) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_document(
            {"metrics": {"listen": listen}},
            base_dir=tmp_path,
            env={"AIRLOCK_SECRET_KEY": "k" * 40},
            require_upstreams=False,
        )
    assert str(raised.value).startswith('metrics.listen must be "host:port"')


def test_an_ipv6_metrics_listen_address_is_understood(tmp_path: Path) -> None:
    settings = settings_from_document(
        {"metrics": {"listen": "[::1]:9464"}},
        base_dir=tmp_path,
        env={"AIRLOCK_SECRET_KEY": "k" * 40},
        require_upstreams=False,
    )
    assert settings.metrics.listen == ("::1", 9464)


async def test_a_forwarded_calls_time_splits_into_the_upstreams_and_airlocks_own(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    market.delay = 0.05  # the upstream takes at least this long to answer
    before = await scrape(airlock)
    async with airlock.client() as client:
        for _ in range(2):
            assert not (await client.call_tool("em_get_task", {"task_id": task.id})).is_error
    after = await scrape(airlock)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("airlock_upstream_seconds_count", upstream=UPSTREAM) == 2
    assert moved("airlock_gateway_seconds_count", upstream=UPSTREAM) == 2
    upstream_seconds = moved("airlock_upstream_seconds_sum", upstream=UPSTREAM)
    assert upstream_seconds >= 2 * market.delay
    whole = moved("airlock_request_seconds_sum", upstream=UPSTREAM, decision="allow")
    assert upstream_seconds + moved("airlock_gateway_seconds_sum", upstream=UPSTREAM) == pytest.approx(whole)
