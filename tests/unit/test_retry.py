"""Retry decisions: pure, with the random draw injected; no test sleeps."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3pull import (
    AccessDeniedError,
    ConfigError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    RetryConfig,
    ServerError,
    ThrottledError,
    TimeoutError,
    TransferError,
    TransientError,
)
from s3pull.planning import _retry
from s3pull.planning._retry import (
    RETRY_COST,
    SUCCESS_REFUND,
    TIMEOUT_RETRY_COST,
    GiveUp,
    Retry,
    RetryBudget,
    backoff_delay,
    decide,
)
from s3pull.transport import _blocking, _loop

CONFIG = RetryConfig(max_attempts=5, backoff_base=1.0, backoff_cap=8.0)


@pytest.mark.parametrize(
    ("failures", "draw", "expected"),
    [
        (1, 0.5, 0.5),
        (2, 0.5, 1.0),
        (3, 0.5, 2.0),
        (4, 0.5, 4.0),
        (5, 0.5, 4.0),  # ceiling 16 capped at 8
        (100, 0.5, 4.0),
        (3, 0.0, 0.0),
        (3, 0.999, 3.996),
    ],
)
def test_backoff_delay(failures: int, draw: float, expected: float) -> None:
    assert backoff_delay(CONFIG, failures, draw) == pytest.approx(expected)


@given(
    base=st.floats(min_value=1e-3, max_value=10),
    extra=st.floats(min_value=0, max_value=100),
    failures=st.integers(min_value=1, max_value=10**6),
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_is_full_jitter_under_the_ceiling(
    base: float, extra: float, failures: int, draw: float
) -> None:
    config = RetryConfig(backoff_base=base, backoff_cap=base + extra)
    delay = backoff_delay(config, failures, draw)
    ceiling = min(config.backoff_cap, base * 2.0 ** min(failures - 1, 62))
    assert 0 <= delay <= ceiling <= config.backoff_cap
    assert delay == pytest.approx(ceiling * draw)


@given(
    failures=st.integers(min_value=1, max_value=60),
    draws=st.tuples(st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True)),
)
def test_backoff_grows_with_draw_and_failures(failures: int, draws: tuple[float, float]) -> None:
    low, high = sorted(draws)
    assert backoff_delay(CONFIG, failures, low) <= backoff_delay(CONFIG, failures, high)
    assert backoff_delay(CONFIG, failures, high) <= backoff_delay(CONFIG, failures + 1, high)


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("nope"),
        AccessDeniedError("denied"),
        IntegrityError("bad crc"),
        ConfigError("bad"),
    ],
)
def test_permanent_errors_give_up_at_once(error: Exception) -> None:
    decision = decide(CONFIG, error, failures=1, draw=0.0)
    assert decision == GiveUp(f"{type(error).__name__} is not retryable")


def test_foreign_errors_give_up() -> None:
    assert decide(CONFIG, KeyError("x"), failures=1, draw=0.0) == GiveUp(
        "unexpected error is not retryable"
    )


@pytest.mark.parametrize(
    "cls", [ThrottledError, ServerError, NetworkError, TimeoutError, TransientError]
)
def test_transient_errors_are_retried_with_the_backoff(cls: type[TransientError]) -> None:
    assert decide(CONFIG, cls("x"), failures=3, draw=0.25) == Retry(1.0)


def test_gives_up_after_max_attempts() -> None:
    error = ServerError("500")
    decisions = [decide(CONFIG, error, failures=n, draw=0.0) for n in range(1, 7)]
    assert all(isinstance(d, Retry) for d in decisions[:4])
    assert decisions[4] == GiveUp("5 attempts failed")
    assert decisions[5] == GiveUp("6 attempts failed")


def test_single_attempt_config_never_retries() -> None:
    config = RetryConfig(max_attempts=1)
    assert isinstance(decide(config, NetworkError("reset"), failures=1, draw=0.0), GiveUp)


@pytest.mark.parametrize(
    ("retry_after", "draw", "expected"),
    [
        (3.0, 0.0, 3.0),  # the server's wait wins over a shorter jitter
        (3.0, 0.99, 3.96),  # ...but never shortens a longer one (failures=3: ceiling 4)
        (100.0, 0.0, 8.0),  # capped at backoff_cap
        (0.0, 0.5, 2.0),
    ],
)
def test_retry_after_is_a_floor_capped_at_backoff_cap(
    retry_after: float, draw: float, expected: float
) -> None:
    error = ThrottledError("SlowDown")
    error.retry_after = retry_after
    decision = decide(CONFIG, error, failures=3, draw=draw)
    assert isinstance(decision, Retry)
    assert decision.delay == pytest.approx(expected)


def test_default_draw_is_random(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_retry.random, "random", lambda: 0.75)
    assert decide(CONFIG, ServerError("500"), failures=2) == Retry(1.5)


def test_retry_withdraws_from_the_budget() -> None:
    budget = RetryBudget(100)
    assert isinstance(decide(CONFIG, ServerError("x"), failures=1, budget=budget, draw=0), Retry)
    assert budget.tokens == 100 - RETRY_COST
    assert isinstance(decide(CONFIG, TimeoutError("x"), failures=1, budget=budget, draw=0), Retry)
    assert budget.tokens == 100 - RETRY_COST - TIMEOUT_RETRY_COST


def test_exhausted_budget_gives_up_without_withdrawing() -> None:
    budget = RetryBudget(RETRY_COST + 1)
    assert isinstance(decide(CONFIG, ServerError("x"), failures=1, budget=budget, draw=0), Retry)
    assert budget.tokens == 1
    decision = decide(CONFIG, ServerError("x"), failures=1, budget=budget, draw=0)
    assert decision == GiveUp("the client's retry budget is exhausted")
    assert budget.tokens == 1


def test_permanent_error_and_last_attempt_cost_nothing() -> None:
    budget = RetryBudget(50)
    decide(CONFIG, NotFoundError("x"), failures=1, budget=budget, draw=0)
    decide(CONFIG, ServerError("x"), failures=5, budget=budget, draw=0)
    assert budget.tokens == 50


def test_refund_is_capped_at_capacity() -> None:
    budget = RetryBudget(10)
    budget.refund()
    assert budget.tokens == 10
    assert budget.withdraw(7)
    budget.refund()
    assert budget.tokens == 3 + SUCCESS_REFUND
    budget.refund(100)
    assert budget.tokens == 10


def test_zero_budget_never_retries() -> None:
    budget = RetryBudget(0)
    assert isinstance(decide(CONFIG, ServerError("x"), failures=1, budget=budget, draw=0), GiveUp)


def test_budget_is_thread_safe() -> None:
    budget = RetryBudget(5 * 1000)
    granted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        local = [budget.withdraw(5) for _ in range(500)]
        with lock:
            granted.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 1000
    assert budget.tokens == 0


# -- connection failures: translated, then decided ------------------------------------


def plain_http_answer_to_a_handshake() -> ssl.SSLError:
    """The error a real TLS client raises when a plain-HTTP server answers it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()  # the ClientHello goes out
    incoming.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ssl.SSLError) as raised:
        tls.do_handshake()
    return raised.value


def connect_failures() -> list[tuple[str, Exception]]:
    wrong_version = plain_http_answer_to_a_handshake()
    no_such_host = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [
        ("tls-to-plain-http", wrong_version),
        ("no-such-host", no_such_host),
        ("no-address", socket.gaierror(socket.EAI_NODATA, "No address associated with hostname")),
    ]


@pytest.mark.parametrize("client", ["loop", "threads"])
@pytest.mark.parametrize(
    ("name", "exc"), [pytest.param(name, exc, id=name) for name, exc in connect_failures()]
)
def test_connection_failures_no_retry_can_fix_give_up_at_once(
    client: str, name: str, exc: Exception
) -> None:
    # Each HTTP client's exceptions are translated beside it.
    translate = _loop.translate if client == "loop" else _blocking.translate
    error = translate(exc, source="s3://bucket/key")
    assert not isinstance(error, TransientError), error
    assert isinstance(error, TransferError)
    assert decide(CONFIG, error, failures=1, draw=0.0) == GiveUp("TransferError is not retryable")
    if "tls" in name:
        assert "WRONG_VERSION_NUMBER" in str(error) and "http://" in str(error)
    else:
        assert "cannot resolve the host name" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["resolver-did-not-answer", "tls-eof", "refused"],
)
def test_connection_failures_a_retry_may_fix_are_retried(exc: Exception) -> None:
    error = _blocking.translate(exc, source="s3://bucket/key")
    assert isinstance(error, NetworkError), error
    assert isinstance(decide(CONFIG, error, failures=1, draw=0.0), Retry)
