"""The event loop's HTTP/1.1 client against a server that says exactly the
bytes each test scripts: framings S3 seldom uses but a proxy or another
store may (chunked, read to the close, HTTP/1.0, 100 Continue), broken
answers, silence, redirects, back-pressure and connection reuse.

Every request goes through the :class:`Transport` as an ordered stream,
which the loop's client serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from s3pull import NetworkError, ProtocolError, Timeouts, TransferConfig
from s3pull import TimeoutError as S3PullTimeout
from s3pull._source import HttpSource
from s3pull.transport import S3Endpoint, Transport
from s3pull.transport._loop import LoopResponse

#: What the server answers to one request: the bytes to send, in writes
#: with a pause (seconds) before each; "close" closes the connection.
Script = list[bytes | float | str]


@dataclass
class Scripted:
    """A loopback server that answers request N of the test with ``answers[N]``."""

    answers: Callable[[int, bytes], Script]
    url: str = ""
    connections: int = 0
    #: Connections the client closed (or the script ended).
    closed: int = 0
    requests: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                for step in self.answers(len(self.requests) - 1, head):
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    elif step == "close":
                        return
                    else:
                        assert isinstance(step, bytes)
                        writer.write(step)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.closed += 1
            writer.close()


async def serve(answers: Callable[[int, bytes], Script]) -> tuple[Scripted, asyncio.Server]:
    scripted = Scripted(answers)
    listening = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    scripted.url = f"http://127.0.0.1:{port}"
    return scripted, listening


def ok(body: bytes, *extra: str) -> bytes:
    headers = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


async def fetch(transport: Transport, url: str) -> bytes:
    body = bytearray()
    async with transport.get(HttpSource(url), ordered=True) as response:
        assert isinstance(response, LoopResponse)
        await response.pump(lambda chunk, _: body.extend(chunk), 64 * 1024)
    return bytes(body)


def client(**timeouts: float) -> Transport:
    config = TransferConfig(timeouts=Timeouts(5.0, **timeouts))
    return Transport(config, S3Endpoint())


async def test_kept_alive_connection_carries_every_request() -> None:
    scripted, listening = await serve(lambda n, _: [ok(b"answer %d" % n)])
    transport = client()
    try:
        assert [await fetch(transport, f"{scripted.url}/k") for _ in range(3)] == [
            b"answer 0",
            b"answer 1",
            b"answer 2",
        ]
    finally:
        await transport.close()
        listening.close()
    assert scripted.connections == 1
    assert scripted.requests[0].startswith(b"GET /k HTTP/1.1\r\nHost: 127.0.0.1:")


async def test_chunked_body_with_extensions_and_trailers() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b"1\r\n \r\n"
        b"5\r\nworld\r\n"
        b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    # Split at awkward places: the parser must not care where reads end.
    script: Script = [chunked[:20], 0.02, chunked[20:33], 0.02, chunked[33:]]
    scripted, listening = await serve(lambda n, _: script if n == 0 else [ok(b"next")])
    transport = client()
    try:
        assert await fetch(transport, f"{scripted.url}/c") == b"hello world"
        assert await fetch(transport, f"{scripted.url}/c") == b"next"
    finally:
        await transport.close()
        listening.close()
    assert scripted.connections == 1  # the chunked answer ended cleanly


async def test_a_body_without_length_is_read_to_the_close_and_not_reused() -> None:
    answers: Script = [b"HTTP/1.0 200 OK\r\n\r\nuntil ", 0.02, b"the end", "close"]
    scripted, listening = await serve(lambda n, _: answers)
    transport = client()
    try:
        assert await fetch(transport, f"{scripted.url}/a") == b"until the end"
        assert await fetch(transport, f"{scripted.url}/a") == b"until the end"
    finally:
        await transport.close()
        listening.close()
    assert scripted.connections == 2


async def test_interim_100_continue_is_skipped() -> None:
    answer: Script = [b"HTTP/1.1 100 Continue\r\n\r\n", ok(b"final")]
    scripted, listening = await serve(lambda n, _: answer)
    transport = client()
    try:
        assert await fetch(transport, f"{scripted.url}/x") == b"final"
    finally:
        await transport.close()
        listening.close()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([b"SMTP ready\r\n\r\n"], "malformed response: not an HTTP status line"),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"], "conflict"),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"], "bad Content-Length"),
        ([b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"], "not a header"),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "close"], "ended early"),
        ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], "bad chunk size"),
        ([b"HTTP/1.1 200 OK\r\nContent-"], "closed"),
        (["close"], "the server closed the connection"),
    ],
    ids=["not-http", "two-lengths", "bad-length", "bad-header", "short", "chunk", "cut", "closed"],
)
async def test_broken_answers_are_network_errors(answer: Script, message: str) -> None:
    # Transient: a retry goes out on another connection.
    if answer[-1] != "close":
        answer = [*answer, "close"]
    scripted, listening = await serve(lambda n, _: answer)
    transport = client()
    try:
        with pytest.raises(NetworkError, match=message):
            await fetch(transport, f"{scripted.url}/b")
    finally:
        await transport.close()
        listening.close()


async def test_silence_before_the_head_and_in_the_body_times_out() -> None:
    answers: dict[int, Script] = {
        0: [5.0],
        1: [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", 5.0],
    }
    scripted, listening = await serve(lambda n, _: answers[n])
    transport = client(first_byte=0.2, read=0.2)
    loop = asyncio.get_running_loop()
    try:
        for _ in answers:
            started = loop.time()
            with pytest.raises(S3PullTimeout):
                await fetch(transport, f"{scripted.url}/s")
            assert loop.time() - started < 2.0
    finally:
        await transport.close()
        listening.close()


async def test_bytes_after_the_answer_on_an_idle_connection_retire_it() -> None:
    # The junk comes after the answer, while the connection waits in the
    # pool: the next request must not read it as its answer.
    answers: dict[int, Script] = {0: [ok(b"first"), 0.05, b"JUNK\r\n\r\n"], 1: [ok(b"second")]}
    scripted, listening = await serve(lambda n, _: answers[n])
    transport = client()
    try:
        assert await fetch(transport, f"{scripted.url}/j") == b"first"
        await asyncio.sleep(0.2)
        assert await fetch(transport, f"{scripted.url}/j") == b"second"
    finally:
        await transport.close()
        listening.close()
    assert scripted.connections == 2


async def test_redirects_of_http_sources_are_followed_up_to_a_limit() -> None:
    def answer(n: int, head: bytes) -> Script:
        if head.startswith(b"GET /loop"):
            return [b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"]
        if head.startswith(b"GET /moved"):
            return [b"HTTP/1.1 301 Moved\r\nLocation: /here\r\nContent-Length: 4\r\n\r\ngone"]
        return [ok(b"arrived")]

    scripted, listening = await serve(answer)
    transport = client()
    try:
        assert await fetch(transport, f"{scripted.url}/moved") == b"arrived"
        with pytest.raises(ProtocolError, match="more than 10 redirects"):
            await fetch(transport, f"{scripted.url}/loop")
    finally:
        await transport.close()
        listening.close()


async def test_a_reader_that_does_not_read_pauses_the_socket() -> None:
    # 8 MiB sent at once; nothing read for a while: what waits in the client
    # stays near read_buffer (the budget charges a stream 2 x read_buffer +
    # one socket read), the rest waits in the kernel and at the server.
    body = bytes(range(256)) * (32 * 1024)
    scripted, listening = await serve(lambda n, _: [ok(body)])
    config = TransferConfig(read_buffer="256KiB")
    transport = Transport(config, S3Endpoint())
    received = bytearray()
    try:
        async with transport.get(HttpSource(f"{scripted.url}/big"), ordered=True) as response:
            assert isinstance(response, LoopResponse)
            await asyncio.sleep(0.3)
            waiting = response._connection._buffered
            assert 0 < waiting <= config.stream_cost
            await response.pump(lambda chunk, _: received.extend(chunk), 64 * 1024)
    finally:
        await transport.close()
        listening.close()
    assert bytes(received) == body


async def test_a_small_whole_get_holds_no_more_than_it_is_charged() -> None:
    # A small object's GET is charged its size plus one socket read
    # (Transport.whole_get_cost), far less than a stream: even a server that
    # sends megabytes past the Content-Length cannot make it hold more.
    body = b"s" * 20_000
    junk = b"J" * (4 * 1024 * 1024)
    scripted, listening = await serve(lambda n, _: [ok(body) + junk])
    transport = client()
    cost = transport.whole_get_cost(len(body))
    assert cost < TransferConfig().stream_cost
    try:
        source = HttpSource(f"{scripted.url}/small")
        async with transport.get(source, expect=len(body)) as response:
            assert isinstance(response, LoopResponse)
            await asyncio.sleep(0.3)
            assert response._connection._buffered <= cost
            assert await response.read_upto(len(body)) == body
    finally:
        await transport.close()
        listening.close()


def test_the_default_budget_admits_a_whole_batch_of_small_gets() -> None:
    config = TransferConfig()
    transport = Transport(config, S3Endpoint())
    for size in (0, 1, 16 * 1024, 64 * 1024):
        assert config.memory_limit // transport.whole_get_cost(size) >= config.batch_concurrency
    # Unknown or larger sizes are read on worker threads, a stream each.
    assert transport.whole_get_cost(None) == config.stream_cost
    assert transport.whole_get_cost(2 * 1024 * 1024) == config.stream_cost


async def test_a_proxy_refusing_the_tunnel_is_one_error_and_no_open_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The proxy answers CONNECT with 407: a transient network error naming
    # the status, and the client closes its socket to the proxy at once.
    refusal: Script = [b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"]
    proxy, listening = await serve(lambda n, _: refusal)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    for name in ("https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    transport = client()
    try:
        with pytest.raises(NetworkError, match="407"):
            await fetch(transport, "https://store.example:8443/k")
    finally:
        await transport.close()
        listening.close()
    assert proxy.requests[0].startswith(b"CONNECT store.example:8443 HTTP/1.1\r\n")
    for _ in range(100):
        if proxy.closed:
            break
        await asyncio.sleep(0.01)
    assert (proxy.connections, proxy.closed) == (1, 1)
