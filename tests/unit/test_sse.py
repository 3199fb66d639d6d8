"""s3pull.sse: frames, ids, throttling, resume, keep-alive, close."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from s3pull import ConfigError, DownloadResult, ServerError
from s3pull.sse import EventStream


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def parse(frame: str) -> dict[str, object]:
    """An SSE frame's fields; ``data`` decoded from JSON."""
    fields: dict[str, object] = {}
    for line in frame.rstrip("\n").split("\n"):
        name, _, value = line.partition(": ")
        fields[name] = json.loads(value) if name == "data" else value
    return fields


def result(source: str, size: int) -> DownloadResult:
    return DownloadResult(source, Path("/tmp/x"), size, 0.5, 1)


async def collect(frames: AsyncIterator[str], into: list[str]) -> None:
    into.extend([frame async for frame in frames])


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_are_named_events_with_growing_ids_and_a_retry_hint() -> None:
    stream = EventStream(retry_ms=1500, min_interval=0)
    frames: list[str] = []
    task = asyncio.create_task(collect(stream.listen(), frames))
    await settle()
    stream.on_queued("s3://b/a", 10)
    await settle()
    stream.on_progress("s3://b/a", 5, 10)
    await settle()
    stream.on_done(result("s3://b/a", 10))
    stream.on_error("s3://b/c", ServerError("500 InternalError", source="s3://b/c"))
    stream.close({"downloaded": 1, "failed": 1})
    await asyncio.wait_for(task, 5)
    assert frames[0] == "retry: 1500\n\n"
    events = [parse(frame) for frame in frames[1:]]
    assert [event["event"] for event in events] == [
        "progress",
        "progress",
        "done",
        "error",
        "summary",
    ]
    ids = [int(str(event["id"])) for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    progress = events[1]["data"]
    assert isinstance(progress, dict)
    assert progress["source"] == "s3://b/a"
    assert (progress["bytes"], progress["total"], progress["attempt"]) == (5, 10, 1)
    assert set(progress) == {"source", "bytes", "total", "rate", "eta", "attempt"}
    error = events[3]["data"]
    assert isinstance(error, dict)
    assert error["kind"] == "ServerError" and "500" in str(error["error"])
    assert events[4]["data"] == {"downloaded": 1, "failed": 1}


async def test_progress_is_throttled_per_download_and_the_final_always_comes() -> None:
    clock = Clock()
    stream = EventStream(clock=clock)  # 0.25 s: at most 4 progress frames a second
    frames: list[str] = []
    task = asyncio.create_task(collect(stream.listen(), frames))
    await settle()
    stream.on_queued("s3://b/a", 1000)
    stream.on_queued("s3://b/z", 1000)
    for step in range(1, 101):  # one second of 100 updates each
        clock.now = step / 100
        stream.on_progress("s3://b/a", step * 10, 1000)
        stream.on_progress("s3://b/z", step * 10, 1000)
        await settle()
    stream.on_done(result("s3://b/a", 1000))
    stream.on_done(result("s3://b/z", 1000))
    stream.close()
    await asyncio.wait_for(task, 5)
    events = [parse(frame) for frame in frames[1:]]
    for source in ("s3://b/a", "s3://b/z"):
        sent = [
            e["data"]
            for e in events
            if isinstance(e["data"], dict) and e["data"].get("source") == source
        ]
        progress = sent[:-1]
        # The first at once, then one per 0.25 s of the clock: 5 in one second.
        assert 4 <= len(progress) <= 5, progress
        assert [p["bytes"] for p in progress] == sorted(p["bytes"] for p in progress)
        assert events[[e["data"] for e in events].index(sent[-1])]["event"] == "done"
    ids = [int(str(e["id"])) for e in events]
    assert ids == sorted(ids)


async def test_a_slow_listener_gets_only_the_latest_value() -> None:
    stream = EventStream(min_interval=0)
    frames = stream.listen()
    assert await anext(frames) == "retry: 2000\n\n"
    stream.on_queued("s3://b/a", 100)
    for done in range(1, 101):  # nobody reads meanwhile: nothing piles up
        stream.on_progress("s3://b/a", done, 100)
    first = parse(await anext(frames))
    assert first["event"] == "progress"
    assert isinstance(first["data"], dict) and first["data"]["bytes"] == 100
    await frames.aclose()
    assert stream.listeners == 0


async def test_last_event_id_replays_the_finals_missed_and_the_progress_in_flight() -> None:
    stream = EventStream(min_interval=0)
    stream.on_queued("s3://b/1", 1)
    stream.on_done(result("s3://b/1", 1))
    first = stream.listen("0")  # id 0: everything kept is replayed
    assert await anext(first) == "retry: 2000\n\n"
    seen = parse(await anext(first))
    assert seen["event"] == "done"
    await first.aclose()  # the browser goes away; meanwhile:
    stream.on_queued("s3://b/2", 1)
    stream.on_done(result("s3://b/2", 1))
    stream.on_queued("s3://b/3", 100)
    stream.on_progress("s3://b/3", 40, 100)
    resumed = stream.listen(str(seen["id"]))
    assert await anext(resumed) == "retry: 2000\n\n"
    done, progress = parse(await anext(resumed)), parse(await anext(resumed))
    assert done["event"] == "done" and isinstance(done["data"], dict)
    assert done["data"]["source"] == "s3://b/2"
    assert progress["event"] == "progress" and isinstance(progress["data"], dict)
    assert progress["data"]["bytes"] == 40
    assert int(str(progress["id"])) > int(str(done["id"])) > int(str(seen["id"]))
    await resumed.aclose()


async def test_a_bad_last_event_id_is_a_fresh_start() -> None:
    stream = EventStream()
    stream.on_queued("s3://b/1", 1)
    stream.on_done(result("s3://b/1", 1))
    frames = stream.listen("not-a-number")
    assert await anext(frames) == "retry: 2000\n\n"
    stream.close()
    assert parse(await anext(frames))["event"] == "summary"  # the earlier done is not replayed
    with pytest.raises(StopAsyncIteration):
        await anext(frames)


async def test_an_idle_stream_sends_keep_alive_comments() -> None:
    stream = EventStream(keepalive=0.05)
    frames = stream.listen()
    await anext(frames)
    assert await asyncio.wait_for(anext(frames), 5) == ": keep-alive\n\n"
    assert await asyncio.wait_for(anext(frames), 5) == ": keep-alive\n\n"
    await frames.aclose()


async def test_events_from_another_thread_wake_the_listener() -> None:
    # The sync Client calls subscribers on its own loop thread.
    stream = EventStream(min_interval=0)
    frames = stream.listen()
    await anext(frames)
    waiting = asyncio.create_task(anext(frames))
    await settle()
    worker = threading.Thread(target=stream.on_queued, args=("s3://b/t", 5))
    worker.start()
    worker.join()
    frame = parse(await asyncio.wait_for(waiting, 5))
    assert frame["event"] == "progress"
    await frames.aclose()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        EventStream(keepalive=0)
