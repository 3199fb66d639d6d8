"""Endpoint breakers shared between processes: what one process's breakers
report (``on_endpoint``), another's take (``adopt``), on a fake clock."""

from __future__ import annotations

import pytest

from s3pull._errors import EndpointUnavailableError, ThrottledError
from s3pull.scheduling._breaker import Breakers, BreakerState

from .test_breaker import EP, START, FakeTime, Worker, make, open_endpoint, settle


def wired(
    time: FakeTime, **there_config: float
) -> tuple[Breakers, Breakers, list[tuple[str, str]]]:
    """Two processes' breakers, the first's changes passed to the second, as
    the pool's parent passes them."""
    here, there = make(time), make(time, **there_config)
    told: list[tuple[str, str]] = []

    def tell(endpoint: str, change: str, state: BreakerState) -> None:
        told.append((endpoint, change))
        there.adopt(endpoint, change, state)

    here.on_endpoint = tell
    return here, there, told


async def test_an_endpoint_opened_in_one_process_pauses_the_other() -> None:
    time = FakeTime()
    here, there, told = wired(time)
    await open_endpoint(here)
    assert told == [(EP, "open")]
    state = there.endpoint_state(EP)
    assert (state.state, state.failures, state.retry_at) == ("open", 10, START + 30)
    waiting = Worker(there)
    await settle()
    assert not waiting.entered  # paused there too, with no failure of its own
    await time.advance(30)
    assert waiting.entered  # then it probes for itself
    waiting.finish()
    await waiting.task


async def test_a_failed_probe_in_one_process_fails_the_others_downloads_at_once() -> None:
    time = FakeTime()
    here, there, told = wired(time)
    await open_endpoint(here)
    probe = Worker(here)
    waiting = Worker(there)
    await time.advance(30)
    assert probe.entered
    # The other process probes too once its own pause is over; stop it first.
    if waiting.entered:
        waiting.finish(ThrottledError("503 SlowDown"))
    probe.finish(ThrottledError("503 SlowDown"))
    await settle()
    assert told[-1] == (EP, "down")
    with pytest.raises(EndpointUnavailableError, match="is down"):
        async with there.endpoint(EP):
            pass
    for worker in (probe, waiting):
        await settle()
        assert worker.task.done()
        worker.task.exception()


async def test_a_successful_probe_in_one_process_releases_the_others_waiters() -> None:
    time = FakeTime()
    here, there, told = wired(time, endpoint_cooldown=60)  # there: a longer pause
    await open_endpoint(here)
    probe = Worker(here)
    waiting = [Worker(there) for _ in range(3)]
    await time.advance(30)
    assert probe.entered and not any(worker.entered for worker in waiting)
    probe.finish()
    await settle()
    assert told[-1] == (EP, "closed")
    assert all(worker.entered for worker in waiting)
    for worker in [probe, *waiting]:
        if not worker.outcome.done():
            worker.finish()
        await worker.task
    assert there.endpoint_state(EP).state == "closed"


async def test_adopted_changes_are_not_reported_again() -> None:
    time = FakeTime()
    here, there, _ = wired(time)
    echoed: list[str] = []
    there.on_endpoint = lambda endpoint, change, state: echoed.append(change)
    await open_endpoint(here)
    there.adopt(EP, "down", here.endpoint_state(EP))
    there.adopt(EP, "closed", here.endpoint_state(EP))
    assert there.endpoint_state(EP).state == "closed"
    assert echoed == []
    await open_endpoint(there)  # its own changes are told
    assert echoed == ["open"]
