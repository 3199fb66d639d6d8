"""The example web app (examples/webapp/) over a real uvicorn on a loopback
port: its SSE stream read by an HTTP client, and its page in a real browser
(Debian's chromium, driven through chromedriver by selenium)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn

from s3pull.testing import FaultServer, generate_bytes

from ..support import free_port

ROOT = Path(__file__).resolve().parents[2]
#: Where the finished page's screenshot is kept (git-ignored), besides tmp_path.
ARTIFACTS = ROOT / ".artifacts"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webapp", ROOT / "examples/webapp/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["webapp"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


webapp = _load_app()


@dataclass
class LiveApp:
    url: str
    s3: FaultServer
    downloads: Path
    keys: dict[str, int]
    app: Any


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApp]:
    with FaultServer() as s3:
        # 256 KiB every 0.1 s per object: a few seconds, long enough to watch.
        keys = webapp.stock(s3, pace=0.1)
        app = webapp.create_app(s3.endpoint_url, tmp_path / "downloads")
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        try:
            yield LiveApp(f"http://127.0.0.1:{port}", s3, tmp_path / "downloads", keys, app)
        finally:
            server.should_exit = True
            thread.join(30)


def _frames(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse an SSE byte stream's lines into frames (comments skipped)."""
    frame: dict[str, Any] = {}
    for line in lines:
        if not line:
            if frame:
                yield frame
            frame = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        frame[name] = json.loads(value) if name == "data" else value


def _start(live: LiveApp, client: httpx.Client, source: str = "s3://demo/photos/") -> str:
    answer = client.post(f"{live.url}/api/downloads", json={"source": source})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def _wait_for_job(live: LiveApp, job: str) -> dict[str, Any]:
    jobs = live.app.state.jobs
    deadline = time.monotonic() + 60
    while "seconds" not in jobs[job].summary and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "seconds" in jobs[job].summary, f"download {job} did not end"
    return dict(jobs[job].summary)


def test_the_stream_over_http_resumes_and_a_disconnect_leaves_the_download_running(
    live: LiveApp,
) -> None:
    with httpx.Client(timeout=30) as client:
        job = _start(live, client)
        seen: list[dict[str, Any]] = []
        with client.stream("GET", f"{live.url}/api/downloads/{job}/events") as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            for frame in _frames(answer.iter_lines()):
                seen.append(frame)
                if any(f.get("event") == "done" for f in seen):
                    break  # the browser goes away mid-download
        assert seen[0] == {"retry": "2000"}
        ids = [int(f["id"]) for f in seen[1:]]
        assert ids == sorted(ids)
        # Every object still arrives: the downloads belong to the app.
        summary = _wait_for_job(live, job)
        assert (summary["downloaded"], summary["failed"]) == (6, 1)
        for key, size in list(live.keys.items())[:-1]:
            name = key.removeprefix("photos/")
            assert (live.downloads / job / name).read_bytes() == generate_bytes(key, size)
        assert not (live.downloads / job / "broken.jpg").exists()
        # Reconnecting with the last id seen: the finals after it, then the summary.
        headers = {"Last-Event-ID": str(ids[-1])}
        with client.stream(
            "GET", f"{live.url}/api/downloads/{job}/events", headers=headers
        ) as answer:
            rest = list(_frames(answer.iter_lines()))
    finals = [f for f in seen + rest if f.get("event") in ("done", "error")]
    assert sorted(f["data"]["source"] for f in finals) == sorted(
        f"s3://demo/{k}" for k in live.keys
    )
    assert [f["event"] for f in finals].count("error") == 1
    assert rest[-1]["event"] == "summary"
    assert rest[-1]["data"]["downloaded"] == 6
    assert all(int(f["id"]) > ids[-1] for f in rest[1:])


def test_a_bad_source_is_a_400_with_its_reason(live: LiveApp) -> None:
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{live.url}/api/downloads", json={"source": "ftp://nope"})
        assert answer.status_code == 400
        assert "s3://" in answer.json()["detail"]
        assert client.get(f"{live.url}/api/downloads/99/events").status_code == 404


def test_one_object_and_a_malformed_url_end_with_their_summary(live: LiveApp) -> None:
    with httpx.Client(timeout=30) as client:
        one = _start(live, client, "s3://demo/photos/image-2.jpg")
        summary = _wait_for_job(live, one)
        assert (summary["downloaded"], summary["failed"]) == (1, 0)
        assert summary["bytes"] == live.keys["photos/image-2.jpg"]
        assert (live.downloads / one / "image-2.jpg").stat().st_size == summary["bytes"]
        bad = _start(live, client, "s3://demo")
        summary = _wait_for_job(live, bad)
        assert (summary["downloaded"], summary["failed"]) == (0, 1)
        assert "s3://demo" in summary["error"]


def _browser() -> Any:
    if not (shutil.which("chromium") and os.path.exists(CHROMEDRIVER)):
        pytest.fail(
            "chromium and chromium-driver are needed: apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,760"):
        options.add_argument(argument)
    # The driver is Debian's: selenium-manager must not look for one online.
    os.environ["SE_OFFLINE"] = "true"
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def test_the_page_shows_bars_advancing_to_100_percent_and_the_counts(
    live: LiveApp, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser = _browser()
    try:
        browser.get(live.url + "/")
        assert browser.find_element(By.ID, "source").get_attribute("value") == "s3://demo/photos/"
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # Sample the DOM until the summary appears: every row's percent over time.
        seen: dict[str, set[int]] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = browser.execute_script(
                "return [...document.querySelectorAll('tr[data-source]')].map("
                "r => [r.dataset.source, r.dataset.state, Number(r.dataset.percent || 0)]);"
            )
            for source, _state, percent in state:
                seen.setdefault(source, set()).add(percent)
            if browser.find_element(By.ID, "summary").get_attribute("data-downloaded"):
                break
            time.sleep(0.1)
        summary = browser.find_element(By.ID, "summary")
        assert summary.get_attribute("data-downloaded") == "6"
        assert summary.get_attribute("data-failed") == "1"
        assert "6 downloaded, 1 failed" in summary.text
        rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-source]")
        states = {
            row.get_attribute("data-source"): (
                row.get_attribute("data-state"),
                row.get_attribute("data-percent"),
                row.find_element(By.TAG_NAME, "progress").get_attribute("value"),
                row.find_element(By.CLASS_NAME, "status").text,
            )
            for row in rows
        }
        good = [f"s3://demo/{key}" for key in list(live.keys)[:-1]]
        for source in good:
            state, percent, bar, status = states[source]
            assert (state, percent, bar) == ("done", "100", "100"), states[source]
            assert status.startswith("done in")
        broken = states["s3://demo/photos/broken.jpg"]
        assert broken[0] == "failed" and "failed:" in broken[3] and "500" in broken[3]
        # The bars advanced: the largest objects were seen part-way.
        advancing = [s for s in good if any(0 < p < 100 for p in seen.get(s, ()))]
        assert len(advancing) >= 3, seen
        browser.execute_script("document.getElementById('message').textContent = ''")
        shot = tmp_path / "webapp.png"
        assert browser.save_screenshot(str(shot))
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "webapp.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        browser.quit()


def test_make_webapp_stopped_by_sigterm_removes_its_downloads(tmp_path: Path) -> None:
    import signal
    import subprocess

    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    app = ROOT / "examples/webapp/app.py"
    with subprocess.Popen(
        [sys.executable, "-u", str(app), "--port", str(port)], env=env, stdout=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert b"s3pull live page" in process.stdout.readline()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                started = httpx.post(
                    f"http://127.0.0.1:{port}/api/downloads",
                    json={"source": "s3://demo/photos/image-2.jpg"},
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)  # uvicorn not listening yet
        assert started.status_code == 200
        [downloads] = tmp_path.glob("s3pull-web-*")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert not downloads.exists()
