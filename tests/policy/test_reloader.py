"""The policy reloader: refuse to start on a bad file, pick up good edits, keep the last good one.

Airlock-defined. Edits set the file's mtime explicitly (os.utime) so they are visible whatever
the filesystem's timestamp granularity; no test sleeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from app.errors import PolicyError
from app.policy.engine import CompiledPolicy
from app.policy.reloader import PolicyReloader

SEED = {"version": "1", "default": "deny", "hide": ["em_cancel_task"]}
OPEN = {"version": "1", "default": "allow"}
BROKEN = '{"version": "1", "default": "alow", "rules": [{"tool": "t", "acton": "allow"}]}'
BASE_MTIME_NS = 1_700_000_000_000_000_000


def write(path: Path, content: dict[str, Any] | str, tick: int = 0) -> None:
    """Write `content` and give the file a distinct mtime (tick seconds after a fixed base)."""
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    mtime_ns = BASE_MTIME_NS + tick * 1_000_000_000
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "em.json"
    write(path, SEED)
    return path


def test_startup_loads_every_upstream_policy(policy_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    write(other, OPEN)
    reloader = PolicyReloader({"em": policy_file, "other": str(other)})
    assert reloader.current("em").is_hidden("em_cancel_task")
    assert reloader.current("other").evaluate("x", {}, "a").action == "allow"
    assert reloader.current("em").source == str(policy_file)


@pytest.mark.parametrize("content", [BROKEN, "{", None])
def test_startup_refuses_an_invalid_or_unreadable_file(policy_file: Path, tmp_path: Path, content: str | None) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        write(bad, content)
    with pytest.raises(PolicyError) as caught:
        PolicyReloader({"em": policy_file, "bad": bad})
    assert caught.value.source == str(bad)


def test_startup_raises_for_the_first_invalid_file_and_logs_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write(first, BROKEN)
    write(second, "{")
    with caplog.at_level(logging.ERROR, logger="airlock.policy"), pytest.raises(PolicyError) as caught:
        PolicyReloader({"b": second, "a": first})
    assert caught.value.source == str(first)
    assert f"{second}: invalid policy" in caplog.text
    assert str(first) not in caplog.text


def test_an_unknown_upstream_is_a_key_error(policy_file: Path) -> None:
    with pytest.raises(KeyError):
        PolicyReloader({"em": policy_file}).current("nope")


@pytest.mark.parametrize("interval", [0, -1.0])
def test_the_poll_interval_must_be_positive(policy_file: Path, interval: float) -> None:
    with pytest.raises(ValueError, match="poll_interval must be a positive number of seconds"):
        PolicyReloader({"em": policy_file}, poll_interval=interval)


def test_nothing_is_reloaded_while_the_file_is_unchanged(policy_file: Path) -> None:
    reloader = PolicyReloader({"em": policy_file})
    before = reloader.current("em")
    assert reloader.check_now() == []
    assert reloader.current("em") is before


def test_touching_a_file_without_changing_its_content_reloads_nothing(policy_file: Path) -> None:
    reloader = PolicyReloader({"em": policy_file})
    write(policy_file, SEED, tick=5)
    assert reloader.check_now() == []


def test_a_valid_edit_is_picked_up_and_listeners_are_told(policy_file: Path) -> None:
    reloader = PolicyReloader({"em": policy_file})
    seen: list[tuple[str, CompiledPolicy]] = []
    reloader.add_listener(lambda upstream, policy: seen.append((upstream, policy)))
    old_version = reloader.current("em").version
    write(policy_file, OPEN, tick=1)
    assert reloader.check_now() == ["em"]
    current = reloader.current("em")
    assert current.version != old_version
    assert current.evaluate("em_cancel_task", {}, "a").action == "allow"
    assert seen == [("em", current)]
    assert reloader.check_now() == []


def test_an_edit_with_the_same_mtime_and_size_is_still_picked_up(policy_file: Path) -> None:
    reloader = PolicyReloader({"em": policy_file})
    same_size = json.dumps(SEED).replace("em_cancel_task", "em_delete_task")
    write(policy_file, same_size, tick=0)
    assert reloader.check_now() == ["em"]
    assert reloader.current("em").is_hidden("em_delete_task")


def test_a_broken_edit_is_logged_once_and_the_last_good_policy_stays(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = PolicyReloader({"em": policy_file})
    listener_calls: list[str] = []
    reloader.add_listener(lambda upstream, policy: listener_calls.append(upstream))
    good = reloader.current("em")
    write(policy_file, BROKEN, tick=1)
    with caplog.at_level(logging.ERROR, logger="airlock.policy"):
        assert reloader.check_now() == []
        assert reloader.check_now() == []
    assert reloader.current("em") is good
    assert listener_calls == []
    (record,) = [r for r in caplog.records if r.name == "airlock.policy"]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert good.version in message
    assert 'default: "alow" is not one of allow, deny, approve' in message
    assert 'rules[0]: missing required key "action"' in message
    assert 'rules[0].acton: unknown key "acton"; did you mean "action"?' in message


def test_a_fix_after_a_broken_edit_loads(policy_file: Path) -> None:
    reloader = PolicyReloader({"em": policy_file})
    write(policy_file, BROKEN, tick=1)
    reloader.check_now()
    write(policy_file, OPEN, tick=2)
    assert reloader.check_now() == ["em"]
    assert reloader.current("em").evaluate("x", {}, "a").action == "allow"


def test_reverting_a_broken_edit_to_the_loaded_content_reloads_nothing(policy_file: Path) -> None:
    reloader = PolicyReloader({"em": policy_file})
    good = reloader.current("em")
    write(policy_file, BROKEN, tick=1)
    reloader.check_now()
    write(policy_file, SEED, tick=2)
    assert reloader.check_now() == []
    assert reloader.current("em") is good
    write(policy_file, BROKEN, tick=3)
    assert reloader.check_now() == []


def test_a_deleted_file_is_logged_and_the_last_good_policy_stays(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = PolicyReloader({"em": policy_file})
    good = reloader.current("em")
    policy_file.unlink()
    with caplog.at_level(logging.ERROR, logger="airlock.policy"):
        assert reloader.check_now() == []
    assert reloader.current("em") is good
    assert "No such file or directory" in caplog.text
    write(policy_file, OPEN, tick=1)
    assert reloader.check_now() == ["em"]


def test_an_atomic_replace_by_rename_is_picked_up(policy_file: Path, tmp_path: Path) -> None:
    reloader = PolicyReloader({"em": policy_file})
    replacement = tmp_path / "em.json.tmp"
    write(replacement, OPEN, tick=1)
    replacement.replace(policy_file)
    assert reloader.check_now() == ["em"]


def test_only_changed_upstreams_are_reloaded(policy_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    write(other, OPEN)
    reloader = PolicyReloader({"em": policy_file, "other": other})
    untouched = reloader.current("other")
    write(policy_file, OPEN, tick=1)
    assert reloader.check_now() == ["em"]
    assert reloader.current("other") is untouched


def test_a_failing_listener_does_not_stop_the_reload_or_other_listeners(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = PolicyReloader({"em": policy_file})
    told: list[str] = []

    def failing(upstream: str, policy: CompiledPolicy) -> None:
        raise RuntimeError("listener bug")

    reloader.add_listener(failing)
    reloader.add_listener(lambda upstream, policy: told.append(upstream))
    write(policy_file, OPEN, tick=1)
    with caplog.at_level(logging.ERROR, logger="airlock.policy"):
        assert reloader.check_now() == ["em"]
    assert told == ["em"]
    assert "listener bug" in caplog.text


async def test_run_polls_and_reloads_until_cancelled(policy_file: Path) -> None:
    reloader = PolicyReloader({"em": policy_file}, poll_interval=0.001)
    reloaded = asyncio.Event()
    reloader.add_listener(lambda upstream, policy: reloaded.set())
    write(policy_file, OPEN, tick=1)
    task = asyncio.create_task(reloader.run())
    async with asyncio.timeout(5):
        await reloaded.wait()
    with pytest.raises(RuntimeError, match="already running"):
        await reloader.run()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reloader.current("em").evaluate("x", {}, "a").action == "allow"
