"""`POST /api/policy/explain`: reviewers only, the JSON form of `airlock policy explain`. Airlock-defined."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.harness import UPSTREAM, AirlockUnderTest

URL = "/api/policy/explain"


async def post(airlock: AirlockUnderTest, body: Any, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=airlock.url, timeout=20) as client:
        if isinstance(body, bytes):
            return await client.post(URL, content=body, headers=headers)
        return await client.post(URL, json=body, headers=headers)


async def test_a_reviewer_gets_the_explanation_with_the_upstreams_schema_and_annotations(
    airlock: AirlockUnderTest,
) -> None:
    token = await airlock.reviewer_token()
    response = await post(
        airlock,
        {
            "upstream": UPSTREAM,
            "agent": "bot",
            "tool": "em_publish_task",
            "arguments": {"title": "t", "description": "d", "bounty_usd": 150},
        },
        token,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["decision"]["rule"], body["decision"]["rule_id"]) == (
        "approve",
        "rules[1]",
        "large-bounty",
    )
    assert [r["matched"] for r in body["rules"]] == [False, True]
    assert body["catalog"] in ("fetched", "known") and body["in_catalog"] is True
    assert body["arguments_check"]["status"] == "conforms"


async def test_arguments_the_upstreams_schema_refuses_are_reported_as_invalid(airlock: AirlockUnderTest) -> None:
    token = await airlock.reviewer_token()
    response = await post(
        airlock,
        {
            "upstream": UPSTREAM,
            "agent": "bot",
            "tool": "em_publish_task",
            "arguments": {"title": "t", "description": "d", "bounty_usd": "150"},
        },
        token,
    )
    body = response.json()
    assert body["outcome"] == "invalid" and body["arguments_check"]["problem"]["path"] == "bounty_usd"
    assert body["decision"]["action"] == "approve"


async def test_without_fetching_the_catalog_is_said_to_be_unknown(airlock: AirlockUnderTest) -> None:
    token = await airlock.reviewer_token()
    response = await post(
        airlock, {"upstream": UPSTREAM, "agent": "bot", "tool": "em_rate_worker", "fetch": False}, token
    )
    body = response.json()
    assert body["catalog"] == "not fetched (fetch: false)" and body["outcome"] == "hidden"


async def test_agent_tokens_are_refused_and_no_token_is_401(airlock: AirlockUnderTest) -> None:
    call = {"upstream": UPSTREAM, "agent": "bot", "tool": "em_get_task"}
    agent = await post(airlock, call, await airlock.agent_token())
    assert agent.status_code == 403 and "agent tokens" in agent.json()["error"]
    anonymous = await post(airlock, call, None)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"]
    assert (await post(airlock, call, "not-a-token")).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "the body must be JSON"),
        ([], 400, "a JSON object"),
        ({"agent": "bot", "tool": "t"}, 400, "upstream must be a non-empty string"),
        ({"upstream": UPSTREAM, "agent": "bot", "tool": "t", "arguments": [1]}, 400, "arguments must be a JSON object"),
        ({"upstream": "nope", "agent": "bot", "tool": "t"}, 404, "no upstream named 'nope'"),
    ],
)
async def test_malformed_requests_get_one_sentence(
    airlock: AirlockUnderTest, body: Any, status: int, message: str
) -> None:
    response = await post(airlock, body, await airlock.reviewer_token())
    assert response.status_code == status and message in response.json()["error"]
