"""The app's long-lived tasks (front ends, storage upkeep, statistics) outlive their failures."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from server.app import _supervised
from server.backoff import Backoff


async def test_a_failed_task_is_logged_and_started_again_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    third = asyncio.Event()
    forever = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"failure {runs}")
        third.set()
        await forever.wait()

    with caplog.at_level("ERROR", logger="server.app"):
        task = asyncio.create_task(_supervised("flaky", flaky, Backoff(first=0.01, cap=0.02)))
        await asyncio.wait_for(third.wait(), 5)
        await asyncio.sleep(0.05)
        assert not task.done()
        failed = [r for r in caplog.records if "task flaky failed" in r.getMessage()]
        assert len(failed) == 2
        assert all(r.exc_info is not None for r in failed)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()
    assert runs == 3


async def test_a_task_that_returns_is_not_started_again() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    await asyncio.wait_for(_supervised("once", once, Backoff(first=0.01, cap=0.02)), 5)
    assert runs == 1
