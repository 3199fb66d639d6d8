"""Circuit breakers: object and endpoint state machines, on a fake clock.

No test sleeps: ``FakeTime.sleep`` records each delay and blocks until the
test moves the fake clock past its deadline with ``advance``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3pull._config import BreakerConfig
from s3pull._errors import (
    AccessDeniedError,
    CircuitOpenError,
    ConfigError,
    CredentialsError,
    DiskFullError,
    EndpointUnavailableError,
    IntegrityError,
    LocalError,
    NetworkError,
    NotFoundError,
    S3PullError,
    ServerError,
    ThrottledError,
    TimeoutError,
    UnsafePathError,
)
from s3pull.scheduling._breaker import Breakers, BreakerState

KEY = "s3://bucket/broken.bin"
EP = "s3://bucket"
START = 1000.0
CLOSED = BreakerState("closed", 0, None, None, None)


class FakeTime:
    """A clock that moves only when told to, and a sleep that waits for it."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + delay, future))
        await future

    @property
    def sleeping(self) -> int:
        return sum(not future.done() for _, future in self._sleepers)

    async def advance(self, seconds: float) -> None:
        await settle()  # whatever is ready runs before time passes
        self.now += seconds
        for deadline, future in self._sleepers:
            if deadline <= self.now and not future.done():
                future.set_result(None)
        await settle()


async def settle() -> None:
    """Let every ready task run until the loop is idle (no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


def make(time: FakeTime | None = None, **config: Any) -> Breakers:
    time = time or FakeTime()
    config.setdefault("endpoint_cooldown", 30)  # the numbers below are written for 30 s
    return Breakers(BreakerConfig(**config), clock=time.clock, sleep=time.sleep)


def server_error(key: str = KEY, message: str = "500 InternalError") -> ServerError:
    return ServerError(message, source=key, attempts=4, status=500)


# -- per object ----------------------------------------------------------------


def test_unknown_key_is_closed_and_admitted() -> None:
    breakers = make()
    assert breakers.state(KEY) == CLOSED
    assert breakers.admit(KEY)
    assert repr(breakers) == "<Breakers objects=0 endpoints=0>"


@pytest.mark.parametrize("failures", [1, 3, 5])
def test_object_opens_after_exactly_n_failures(failures: int) -> None:
    time = FakeTime()
    breakers = make(time, failures=failures, cooldown=300)
    for count in range(1, failures):
        breakers.failed(KEY, server_error())
        assert breakers.state(KEY).state == "closed"
        assert breakers.state(KEY).failures == count
        assert breakers.admit(KEY)
    time.now += 7
    breakers.failed(KEY, server_error())
    assert breakers.state(KEY) == BreakerState(
        state="open",
        failures=failures,
        last_failure="s3://bucket/broken.bin: 500 InternalError (after 4 attempts)",
        opened_at=START + 7,
        retry_at=START + 7 + 300,
    )
    assert not breakers.admit(KEY)


def test_object_refused_until_the_cooldown_then_exactly_one_probe() -> None:
    time = FakeTime()
    breakers = make(time, failures=2, cooldown=300)
    breakers.failed(KEY, server_error())
    breakers.failed(KEY, server_error())
    time.now += 299.9
    assert not breakers.admit(KEY)
    assert breakers.state(KEY).state == "open"
    time.now += 0.1
    assert breakers.admit(KEY)  # the probe
    assert [breakers.admit(KEY) for _ in range(5)] == [False] * 5
    state = breakers.state(KEY)
    assert (state.state, state.failures, state.opened_at, state.retry_at) == (
        "half-open",
        2,
        START,
        None,
    )


def test_object_probe_success_closes_and_forgets() -> None:
    time = FakeTime()
    breakers = make(time, failures=1, cooldown=60)
    breakers.failed(KEY, server_error())
    time.now += 60
    assert breakers.admit(KEY)
    breakers.succeeded(KEY)
    assert breakers.state(KEY) == CLOSED
    assert repr(breakers) == "<Breakers objects=0 endpoints=0>"
    assert all(breakers.admit(KEY) for _ in range(3))


def test_object_probe_failure_opens_again_for_a_new_cooldown() -> None:
    time = FakeTime()
    breakers = make(time, failures=2, cooldown=60)
    breakers.failed(KEY, server_error())
    breakers.failed(KEY, server_error())
    time.now += 75
    assert breakers.admit(KEY)
    time.now += 5  # the probe took 5 s
    breakers.failed(KEY, NotFoundError("NoSuchKey", source=KEY))
    state = breakers.state(KEY)
    assert state == BreakerState(
        "open", 3, "s3://bucket/broken.bin: NoSuchKey", START + 80, START + 140
    )
    time.now += 59
    assert not breakers.admit(KEY)
    time.now += 1
    assert breakers.admit(KEY)


def test_object_failures_must_be_consecutive() -> None:
    breakers = make(failures=3)
    for _ in range(5):
        breakers.failed(KEY, server_error())
        breakers.failed(KEY, server_error())
        breakers.succeeded(KEY)
    assert breakers.state(KEY) == CLOSED


@pytest.mark.parametrize(
    "error",
    [
        LocalError("permission denied"),
        DiskFullError("no space left on device"),
        UnsafePathError("key escapes the destination: ../etc/passwd"),
        CircuitOpenError("skipped: breaker open"),
        CredentialsError("the token expired"),
        ConfigError("bad option"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_failures_that_are_not_the_objects_fault_are_ignored(error: S3PullError) -> None:
    breakers = make(failures=1)
    for _ in range(10):
        breakers.failed(KEY, error)
    assert breakers.state(KEY) == CLOSED
    assert breakers.admit(KEY)
    assert repr(breakers) == "<Breakers objects=0 endpoints=0>"
    # ...and do not reset the count either.
    breakers = make(failures=2)
    breakers.failed(KEY, server_error())
    breakers.failed(KEY, error)
    breakers.failed(KEY, server_error())
    assert breakers.state(KEY).state == "open"


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("NoSuchKey"),
        AccessDeniedError("AccessDenied"),
        IntegrityError("checksum mismatch"),
        ThrottledError("SlowDown"),
        S3PullError("anything else"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_failures_of_the_object_or_the_store_count(error: S3PullError) -> None:
    breakers = make(failures=1)
    breakers.failed(KEY, error)
    assert breakers.state(KEY).state == "open"


def test_a_probe_that_fails_locally_hands_over_at_once() -> None:
    time = FakeTime()
    breakers = make(time, failures=1, cooldown=60)
    breakers.failed(KEY, server_error())
    time.now += 60
    assert breakers.admit(KEY)
    time.now += 10
    breakers.failed(KEY, DiskFullError("no space left on device"))
    assert breakers.state(KEY) == BreakerState(
        "open", 1, "s3://bucket/broken.bin: 500 InternalError (after 4 attempts)", START, START + 70
    )
    assert breakers.admit(KEY)
    assert not breakers.admit(KEY)


def test_abandoned_probe_hands_over_at_once() -> None:
    time = FakeTime()
    breakers = make(time, failures=1, cooldown=60)
    breakers.abandoned(KEY)  # unknown key: nothing to do
    breakers.failed(KEY, server_error())
    breakers.abandoned(KEY)  # open, not probing: nothing changes
    assert not breakers.admit(KEY)
    time.now += 60
    assert breakers.admit(KEY)
    breakers.abandoned(KEY)
    assert breakers.state(KEY).state == "open"
    assert breakers.admit(KEY)
    assert not breakers.admit(KEY)


def test_a_probe_that_never_reports_is_presumed_lost_after_a_cooldown() -> None:
    time = FakeTime()
    breakers = make(time, failures=1, cooldown=60)
    breakers.failed(KEY, server_error())
    time.now += 60
    assert breakers.admit(KEY)
    time.now += 59
    assert not breakers.admit(KEY)
    time.now += 1
    assert breakers.admit(KEY)
    assert not breakers.admit(KEY)


def test_a_late_failure_while_open_counts_but_does_not_delay_the_probe() -> None:
    time = FakeTime()
    breakers = make(time, failures=1, cooldown=60)
    breakers.failed(KEY, server_error())
    time.now += 30
    breakers.failed(KEY, server_error(message="503 SlowDown"))
    state = breakers.state(KEY)
    assert (state.failures, state.opened_at, state.retry_at) == (2, START, START + 60)
    assert state.last_failure == "s3://bucket/broken.bin: 503 SlowDown (after 4 attempts)"


def test_last_failure_is_one_line() -> None:
    breakers = make()
    breakers.failed(KEY, server_error(message="500 InternalError\n<Error>\n</Error>"))
    assert breakers.state(KEY).last_failure == (
        "s3://bucket/broken.bin: 500 InternalError <Error> </Error> (after 4 attempts)"
    )


def test_reset_one_key_or_everything() -> None:
    breakers = make(failures=1)
    for key in ("s3://b/1", "s3://b/2", "s3://b/3"):
        breakers.failed(key, server_error(key))
    breakers.reset("s3://b/2")
    assert breakers.state("s3://b/2") == CLOSED
    assert breakers.admit("s3://b/2")
    assert breakers.state("s3://b/1").state == "open"
    breakers.reset("s3://b/unknown")
    breakers.reset()
    assert breakers.state("s3://b/1") == CLOSED
    assert breakers.state("s3://b/3") == CLOSED
    assert repr(breakers) == "<Breakers objects=0 endpoints=0>"


def test_memory_is_bounded_least_recently_failed_first_out() -> None:
    breakers = make(failures=2, max_tracked=3)
    for key in ("s3://b/1", "s3://b/2", "s3://b/3"):
        breakers.failed(key, server_error(key))
    breakers.failed("s3://b/1", server_error("s3://b/1"))  # 1 is now the most recent
    breakers.failed("s3://b/4", server_error("s3://b/4"))
    assert repr(breakers) == "<Breakers objects=3 endpoints=0>"
    assert breakers.state("s3://b/2") == CLOSED  # forgotten
    assert breakers.state("s3://b/1").state == "open"
    assert breakers.state("s3://b/3").failures == 1
    assert breakers.state("s3://b/4").failures == 1


def test_succeeded_forgets_even_an_open_key() -> None:
    breakers = make(failures=1)
    breakers.failed(KEY, server_error())
    breakers.succeeded(KEY)  # an attempt admitted before the breaker opened
    assert breakers.state(KEY) == CLOSED


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["admit", "ok", "fail", "local", "abandon", "tick"]),
        st.integers(0, 5),
    ),
    max_size=200,
)


@given(_OPS)
def test_object_breaker_invariants(ops: list[tuple[str, int]]) -> None:
    time = FakeTime()
    breakers = make(time, failures=2, cooldown=10, max_tracked=4)
    for op, n in ops:
        key = f"s3://b/{n}"
        if op == "admit":
            before = breakers.state(key)
            admitted = breakers.admit(key)
            if before.state == "closed":
                assert admitted
            elif before.state == "open":
                assert before.retry_at is not None
                assert admitted == (time.now >= before.retry_at)
            if admitted and before.state != "closed":
                assert breakers.state(key).state == "half-open"
        elif op == "ok":
            breakers.succeeded(key)
        elif op == "fail":
            breakers.failed(key, server_error(key))
        elif op == "local":
            breakers.failed(key, LocalError("read-only file system"))
        elif op == "abandon":
            breakers.abandoned(key)
        else:
            time.now += n * 3
        assert len(breakers._objects) <= 4
        for entry in breakers._objects.values():
            assert entry.failures >= 1
            assert (entry.state == "closed") == (entry.failures < 2)


# -- per endpoint ----------------------------------------------------------------


async def download(breakers: Breakers, error: S3PullError | None = None) -> None:
    """One download from EP that succeeds or fails with ``error``."""
    if error is None:
        async with breakers.endpoint(EP):
            pass
        return
    with pytest.raises(type(error)):
        async with breakers.endpoint(EP):
            raise error


class Worker:
    """A download from EP that stays inside the endpoint until told how it ends."""

    def __init__(self, breakers: Breakers) -> None:
        self.breakers = breakers
        self.entered = False
        self.outcome: asyncio.Future[S3PullError | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with self.breakers.endpoint(EP):
            self.entered = True
            error = await self.outcome
            if error is not None:
                raise error

    def finish(self, error: S3PullError | None = None) -> None:
        self.outcome.set_result(error)


async def open_endpoint(breakers: Breakers, failures: int = 10) -> None:
    for _ in range(failures):
        await download(breakers, ServerError("503 ServiceUnavailable", status=503))
    assert breakers.endpoint_state(EP).state == "open"


async def test_a_closed_endpoint_never_waits() -> None:
    time = FakeTime()
    breakers = make(time)
    for _ in range(100):
        await download(breakers)
    await download(breakers, NotFoundError("NoSuchKey"))
    assert time.sleeps == []
    assert breakers.endpoint_state(EP) == CLOSED
    assert repr(breakers) == "<Breakers objects=0 endpoints=0>"


async def test_ten_consecutive_transient_failures_open_the_endpoint() -> None:
    time = FakeTime()
    breakers = make(time)
    transient = [
        ServerError("500 InternalError", status=500),
        ThrottledError("503 SlowDown", status=503),
        NetworkError("connection reset"),
        TimeoutError("stalled for 30 s"),
    ]
    for count in range(1, 10):
        await download(breakers, transient[count % 4])
        assert breakers.endpoint_state(EP).state == "closed"
        assert breakers.endpoint_state(EP).failures == count
    time.now += 3
    await download(breakers, transient[0])
    assert breakers.endpoint_state(EP) == BreakerState(
        "open", 10, "500 InternalError", START + 3, START + 3 + 30
    )


async def test_a_success_resets_the_endpoint_count() -> None:
    breakers = make()
    for _ in range(9):
        await download(breakers, NetworkError("connection refused"))
    await download(breakers)
    assert breakers.endpoint_state(EP) == CLOSED
    for _ in range(9):
        await download(breakers, NetworkError("connection refused"))
    assert breakers.endpoint_state(EP).state == "closed"


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("NoSuchKey"),
        AccessDeniedError("AccessDenied"),
        IntegrityError("checksum mismatch"),
        DiskFullError("no space left on device"),
        CircuitOpenError("skipped"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_other_errors_neither_count_nor_reset(error: S3PullError) -> None:
    breakers = make()
    for _ in range(9):
        await download(breakers, NetworkError("connection refused"))
    await download(breakers, error)
    assert breakers.endpoint_state(EP).failures == 9
    await download(breakers, NetworkError("connection refused"))
    assert breakers.endpoint_state(EP).state == "open"


async def test_endpoints_are_independent() -> None:
    breakers = make(endpoint_failures=1)
    await open_endpoint(breakers, 1)
    assert breakers.endpoint_state("s3://other") == CLOSED
    async with breakers.endpoint("s3://other"):
        pass


async def test_one_probe_after_the_cooldown_and_its_success_releases_everyone() -> None:
    time = FakeTime()
    breakers = make(time)
    await open_endpoint(breakers)
    workers = [Worker(breakers) for _ in range(5)]
    await settle()
    assert not any(worker.entered for worker in workers)
    assert time.sleeps == [30]  # one waiter times the cooldown, not five
    await time.advance(29)
    assert not any(worker.entered for worker in workers)
    await time.advance(1)
    probes = [worker for worker in workers if worker.entered]
    assert len(probes) == 1
    assert breakers.endpoint_state(EP) == BreakerState(
        "half-open", 10, "503 ServiceUnavailable", START, None
    )
    await time.advance(1000)  # the probe is slow: nobody else goes in meanwhile
    assert [worker.entered for worker in workers].count(True) == 1
    probes[0].finish()
    await settle()
    assert all(worker.entered for worker in workers)
    assert breakers.endpoint_state(EP) == CLOSED
    for worker in workers:
        if worker is not probes[0]:
            worker.finish()
    await asyncio.gather(*(worker.task for worker in workers))
    assert time.sleeps == [30]
    assert repr(breakers) == "<Breakers objects=0 endpoints=0>"


async def fail_the_probe(time: FakeTime, breakers: Breakers, waiting: int) -> list[Worker]:
    """Open EP, let ``waiting`` downloads wait, fail the probe after 2 s; the others."""
    await open_endpoint(breakers)
    workers = [Worker(breakers) for _ in range(waiting)]
    await time.advance(30)
    (probe,) = (worker for worker in workers if worker.entered)
    await time.advance(2)
    probe.finish(ThrottledError("503 SlowDown"))
    await settle()
    with pytest.raises(ThrottledError):
        await probe.task
    waiting = [worker for worker in workers if worker is not probe]
    for worker in waiting:
        assert worker.task.done()  # their outcome was decided with the probe's
        worker.task.exception()  # retrieved: a test looks at it if it cares
    return waiting


async def test_a_failed_probe_fails_its_waiters_at_once() -> None:
    time = FakeTime()
    breakers = make(time)
    waiting = await fail_the_probe(time, breakers, 4)
    # No time passed: the waiters did not wait out another cooldown each.
    assert all(worker.task.done() for worker in waiting)
    assert not any(worker.entered for worker in waiting)
    for worker in waiting:
        error = worker.task.exception()
        assert isinstance(error, EndpointUnavailableError)
        assert isinstance(error, CircuitOpenError)  # a skip, never held against the object
        assert str(error) == (
            "not attempted: endpoint s3://bucket is down: 11 transient failures in a row, "
            "the probe after a pause included (the next probe in 30 s); the last: 503 SlowDown"
        )
    assert breakers.endpoint_state(EP) == BreakerState(
        "open", 11, "503 SlowDown", START + 32, START + 62
    )
    assert time.sleeps == [30]


async def test_a_down_endpoint_refuses_at_once_and_probes_once_per_cooldown() -> None:
    time = FakeTime()
    breakers = make(time)
    await fail_the_probe(time, breakers, 1)
    for _ in range(100):  # a batch's worth of objects, in no time at all
        with pytest.raises(EndpointUnavailableError, match="next probe in 30 s"):
            await download(breakers)
    await time.advance(29.5)
    with pytest.raises(EndpointUnavailableError, match="next probe in 0 s"):
        await download(breakers)
    await time.advance(0.5)
    probe = Worker(breakers)  # the first to come after the cooldown probes
    await settle()
    assert probe.entered
    assert breakers.endpoint_state(EP).state == "half-open"
    with pytest.raises(EndpointUnavailableError, match="a new probe is under way"):
        await download(breakers)
    probe.finish(ServerError("500 InternalError"))
    with pytest.raises(ServerError):
        await probe.task
    assert breakers.endpoint_state(EP) == BreakerState(
        "open", 12, "500 InternalError", START + 62, START + 92
    )
    with pytest.raises(EndpointUnavailableError, match="500 InternalError"):
        await download(breakers)
    assert time.sleeps == [30]  # nobody sleeps while the endpoint is down


async def test_a_down_endpoint_closes_when_a_probe_succeeds() -> None:
    time = FakeTime()
    breakers = make(time)
    await fail_the_probe(time, breakers, 2)
    await time.advance(30)
    await download(breakers)  # the probe, and the endpoint is back
    assert breakers.endpoint_state(EP) == CLOSED
    for _ in range(3):
        await download(breakers)
    # Down again only after another endpoint_failures and a failed probe.
    await open_endpoint(breakers)
    waiter = Worker(breakers)
    await settle()
    assert not waiter.task.done() and not waiter.entered  # waits: no probe has failed yet
    await time.advance(30)
    assert waiter.entered
    waiter.finish()
    await waiter.task


async def test_a_probe_of_a_down_endpoint_without_a_verdict_hands_over() -> None:
    time = FakeTime()
    breakers = make(time)
    await fail_the_probe(time, breakers, 1)
    await time.advance(30)
    probe = Worker(breakers)
    await settle()
    probe.finish(NotFoundError("NoSuchKey"))
    with pytest.raises(NotFoundError):
        await probe.task
    # Still down, but the next download probes at once (the cooldown was served).
    assert breakers.endpoint_state(EP).state == "open"
    await download(breakers)
    assert breakers.endpoint_state(EP) == CLOSED


@pytest.mark.parametrize("key", [EP, None])
async def test_reset_brings_a_down_endpoint_back(key: str | None) -> None:
    time = FakeTime()
    breakers = make(time)
    await fail_the_probe(time, breakers, 1)
    breakers.reset(key)
    await download(breakers)
    assert breakers.endpoint_state(EP) == CLOSED


async def test_a_cancelled_probe_does_not_wedge_the_endpoint() -> None:
    time = FakeTime()
    breakers = make(time)
    await open_endpoint(breakers)
    workers = [Worker(breakers) for _ in range(3)]
    await time.advance(30)
    (probe,) = (worker for worker in workers if worker.entered)
    probe.task.cancel()
    await settle()
    assert probe.task.cancelled()
    # The next waiter probes at once: the cooldown was already served.
    (second,) = (worker for worker in workers if worker.entered and worker is not probe)
    assert time.sleeps == [30]
    assert breakers.endpoint_state(EP).state == "half-open"
    second.finish()
    await settle()
    assert all(worker.entered for worker in workers)
    for worker in workers:
        if worker not in (probe, second):
            worker.finish()
    await asyncio.gather(*(worker.task for worker in workers if worker is not probe))
    assert breakers.endpoint_state(EP) == CLOSED


async def test_a_cancelled_probe_with_nobody_waiting_lets_the_next_caller_probe() -> None:
    time = FakeTime()
    breakers = make(time)
    await open_endpoint(breakers)
    probe = Worker(breakers)
    await time.advance(30)
    assert probe.entered
    probe.task.cancel()
    await settle()
    assert breakers.endpoint_state(EP) == BreakerState(
        "open", 10, "503 ServiceUnavailable", START, START + 30
    )
    await download(breakers)  # goes straight in as the probe
    assert time.sleeps == [30]
    assert breakers.endpoint_state(EP) == CLOSED


async def test_a_probe_without_a_verdict_hands_over_at_once() -> None:
    time = FakeTime()
    breakers = make(time)
    await open_endpoint(breakers)
    workers = [Worker(breakers) for _ in range(3)]
    await time.advance(30)
    (probe,) = (worker for worker in workers if worker.entered)
    probe.finish(NotFoundError("NoSuchKey"))  # the object is gone; the endpoint?
    await settle()
    with pytest.raises(NotFoundError):
        await probe.task
    (second,) = (worker for worker in workers if worker.entered and worker is not probe)
    assert breakers.endpoint_state(EP).failures == 10
    second.outcome.set_exception(RuntimeError("a bug"))
    await settle()
    with pytest.raises(RuntimeError, match="a bug"):
        await second.task
    (third,) = (worker for worker in workers if worker not in (probe, second))
    assert third.entered
    assert breakers.endpoint_state(EP).state == "half-open"
    third.finish()
    await third.task
    assert time.sleeps == [30]
    assert breakers.endpoint_state(EP) == CLOSED


async def test_a_cancelled_timer_hands_the_cooldown_to_another_waiter() -> None:
    time = FakeTime()
    breakers = make(time)
    await open_endpoint(breakers)
    first = Worker(breakers)
    await settle()
    others = [Worker(breakers) for _ in range(2)]
    await settle()
    assert time.sleeps == [30]
    first.task.cancel()
    await settle()
    assert first.task.cancelled()
    assert time.sleeps == [30, 30]  # someone else sleeps out what is left
    assert time.sleeping == 1
    await time.advance(30)
    assert [worker.entered for worker in others].count(True) == 1
    for worker in others:
        if worker.entered:
            worker.finish()
    await settle()
    for worker in others:
        if not worker.outcome.done():
            worker.finish()
    await asyncio.gather(*(worker.task for worker in others))
    assert breakers.endpoint_state(EP) == CLOSED


async def test_cancelled_waiters_leave_quietly() -> None:
    time = FakeTime()
    breakers = make(time)
    await open_endpoint(breakers)
    workers = [Worker(breakers) for _ in range(3)]
    await settle()
    workers[2].task.cancel()
    await time.advance(30)
    (probe,) = (worker for worker in workers if worker.entered)
    probe.finish()
    await settle()
    assert workers[2].task.cancelled()
    for worker in workers[:2]:
        if not worker.outcome.done():
            worker.finish()
    await asyncio.gather(*(worker.task for worker in workers[:2]))
    assert breakers.endpoint_state(EP) == CLOSED


@pytest.mark.parametrize("key", [EP, None])
async def test_reset_releases_every_waiter_at_once(key: str | None) -> None:
    time = FakeTime()
    breakers = make(time)
    await open_endpoint(breakers)
    workers = [Worker(breakers) for _ in range(3)]
    await settle()
    assert time.sleeping == 1
    breakers.reset(key)
    await settle()
    assert all(worker.entered for worker in workers)
    assert time.sleeping == 0  # the one timing the cooldown stopped too
    assert breakers.endpoint_state(EP) == CLOSED
    for worker in workers:
        worker.finish()
    await asyncio.gather(*(worker.task for worker in workers))


async def test_a_probe_that_outlives_a_reset_is_not_the_probe_any_more() -> None:
    time = FakeTime()
    breakers = make(time, endpoint_failures=1)
    await open_endpoint(breakers, 1)
    probe = Worker(breakers)
    await time.advance(30)
    assert probe.entered
    breakers.reset(EP)
    probe.finish(NetworkError("connection reset"))
    with pytest.raises(NetworkError):
        await probe.task
    # Counted as an ordinary failure of a closed endpoint.
    assert breakers.endpoint_state(EP) == BreakerState(
        "open", 1, "connection reset", START + 30, START + 60
    )


async def test_late_outcomes_while_open_do_not_decide() -> None:
    time = FakeTime()
    breakers = make(time, endpoint_failures=2)
    slow = [Worker(breakers) for _ in range(2)]  # in flight before it opens
    await settle()
    await open_endpoint(breakers, 2)
    time.now += 10
    slow[0].finish()
    slow[1].finish(ServerError("502 Bad Gateway"))
    with pytest.raises(ServerError):
        await asyncio.gather(*(worker.task for worker in slow))
    assert breakers.endpoint_state(EP) == BreakerState(
        "open", 3, "502 Bad Gateway", START, START + 30
    )
