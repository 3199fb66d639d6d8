"""The CLI's progress subscribers, driven directly with a fake clock, rendered
by rich into a string as a terminal would show them."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from s3pull import DownloadResult, LoggingSubscriber
from s3pull._cli._progress import Rate, _BatchBars, _JsonProgress, _RichProgress

MiB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_covers_the_last_seconds_only() -> None:
    rate = Rate(window=5.0)
    rate.add(0.0, 0)
    rate.add(1.0, 100 * MiB)  # a burst, then a steady 10 MiB/s
    for second in range(2, 20):
        rate.add(float(second), 100 * MiB + (second - 1) * 10 * MiB)
    assert rate.per_second() == pytest.approx(10 * MiB)


def test_json_progress_is_one_line_per_object_per_interval() -> None:
    clock, out = Clock(), io.StringIO()
    progress = _JsonProgress(out, clock=clock, every_seconds=10.0)
    progress.on_queued("s3://b/k", 100 * MiB)
    for step in range(1, 31):  # 30 s at 2 MiB/s, 10 updates a second
        for tenth in range(10):
            clock.now = 100.0 + step - 1 + (tenth + 1) / 10
            progress.on_progress("s3://b/k", (step - 1) * 2 * MiB + (tenth + 1) * MiB // 5, 0)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 3
    assert {line["event"] for line in lines} == {"progress"}
    assert lines[-1]["rate"] == pytest.approx(2 * MiB, rel=0.01)
    assert lines[-1]["source"] == "s3://b/k"
    progress.on_done(DownloadResult("s3://b/k", Path("/k"), 100 * MiB, 50.0, 1))
    assert json.loads(out.getvalue().splitlines()[-1])["event"] == "done"


def test_logging_progress_is_throttled_by_time_too(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    subscriber = LoggingSubscriber(every_bytes=1_000_000, every_seconds=10.0, clock=clock)
    subscriber.on_queued("s3://b/k", 1 << 30)
    with caplog.at_level(logging.INFO, logger="s3pull"):
        for i in range(1, 1025):  # 1 GiB in 1 MiB steps over 40 s
            clock.now = 100.0 + i * 40 / 1024
            subscriber.on_progress("s3://b/k", i * MiB, 1 << 30)
    assert 3 <= len(caplog.records) <= 4  # one per 10 s, not one per 50 MB


def test_batch_bars_show_the_real_rate_and_the_totals_once_listed() -> None:
    clock, out = Clock(), io.StringIO()
    bars = _BatchBars(file=out, clock=clock)
    for i in range(8):
        bars.on_queued(f"s3://b/{i}", 4 * MiB)
        for chunk in range(1, 5):
            clock.now += 0.04  # 1 MiB every 40 ms: 25 MiB/s
            bars.on_progress(f"s3://b/{i}", chunk * MiB, 4 * MiB)
        bars.on_done(DownloadResult(f"s3://b/{i}", Path(f"/{i}"), 4 * MiB, 0.16, 1))
    bars.on_listed(10, 40 * MiB)
    bars.objects.console.print(bars.objects)
    bars.bytes.console.print(bars.bytes)
    shown = out.getvalue()
    assert "25.0 MiB/s" in shown
    assert "/10" in shown  # the objects bar got its total
    assert "32.0/40.0 MiB" in shown
    assert "bytes/s" not in shown and "MB/s" not in shown


def test_single_bar_speaks_binary_units() -> None:
    clock, out = Clock(), io.StringIO()
    bar = _RichProgress(file=out, clock=clock)
    bar.on_queued("s3://b/k", 64 * MiB)
    for chunk in range(1, 33):
        clock.now += 0.1  # 1 MiB every 100 ms
        bar.on_progress("s3://b/k", chunk * MiB, 64 * MiB)
    bar.progress.console.print(bar.progress)
    shown = out.getvalue()
    assert "10.0 MiB/s" in shown and "MB/s" not in shown.replace("MiB/s", "")
    assert "0:00:03" in shown  # 32 MiB to go at 10 MiB/s
