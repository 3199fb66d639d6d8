"""Idempotent shards: a task delivered twice downloads once.

Redis delivers a task again when its worker did not acknowledge it in time
(the visibility timeout), while the first copy may still be running. Three
things make the second copy harmless and cheap:

- **The atomic rename** (every s3pull download): two copies of one object
  never mix; the destination holds one complete file or the old one.
- **A lock per task** (``s3pull:lock:<task id>``, redis-py's ``Lock``: ``SET NX
  PX``, released by its owner only) with a heartbeat: a thread extends it
  every third of ``LOCK_SECONDS`` while the shard runs, so it expires soon after
  a copy dies, and never while one works. A second copy waits for it; when
  it gets it and the first copy finished (``s3pull:done:<task id>`` holds
  that copy's result), it returns that result without a request.
- **What the destination already holds** (``already_there``): every file
  downloaded by a shard is tagged with the object's size, ETag and version
  (an extended attribute, ``user.s3pull.object``); an item whose listing
  gives the same size and ETag is ``existing`` without a request. Where the
  file system has no extended attributes, size and modification time decide,
  as ``skip_existing`` does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from .._results import DOWNLOADED, EXISTING, ObjectOutcome
from ..planning import ShardItem
from ..scheduling import is_up_to_date, planned_item
from ._reply import Redis

#: The extended attribute a shard's downloads carry.
XATTR = "user.s3pull.object"
#: How long a task's lock lives without a heartbeat (``S3PULL_LOCK_SECONDS``):
#: how long a copy delivered after a worker's death waits before it runs.
LOCK_SECONDS = 10.0
#: How long a finished task's result is kept for its late copies.
DONE_SECONDS = 24 * 3600


def tag(outcome_line: dict[str, Any], task_id: str) -> None:
    """Record the downloaded object's size, ETag and version with its file,
    and the task and outcome that downloaded it."""
    if outcome_line.get("status") != DOWNLOADED or outcome_line.get("path") is None:
        return
    facts = {k: outcome_line.get(k) for k in ("bytes", "etag", "version_id")}
    facts.update(task=task_id, outcome={k: v for k, v in outcome_line.items() if k != "id"})
    with contextlib.suppress(OSError):  # no xattrs here: size + mtime will do
        os.setxattr(outcome_line["path"], XATTR, json.dumps(facts).encode(), follow_symlinks=False)


def already_there(item: ShardItem, task_id: str) -> dict[str, Any] | None:
    """The outcome line of ``item`` when its destination holds the object
    version its listing names (None when it does not, or cannot be told):
    ``existing``, or, if an earlier delivery of this very task downloaded it,
    that download's outcome (the first delivery died before it could say)."""
    if item.size is None or item.etag is None or item.directory:
        return None
    try:
        facts = json.loads(os.getxattr(item.path, XATTR, follow_symlinks=False))
    except OSError as error:
        if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) and item.last_modified is not None:
            modified = datetime.fromisoformat(item.last_modified).timestamp()
            if is_up_to_date(Path(item.path), item.size, modified):
                return _existing(item)
        return None  # no such file, or not tagged by s3pull
    except ValueError:
        return None
    same_version = item.version_id is None or facts.get("version_id") == item.version_id
    if facts.get("bytes") != item.size or facts.get("etag") != item.etag or not same_version:
        return None
    if facts.get("task") == task_id and isinstance(facts.get("outcome"), dict):
        return {"id": item.id, **facts["outcome"]}
    return _existing(item)


def _existing(item: ShardItem) -> dict[str, Any]:
    batch_item = planned_item(item)
    outcome = ObjectOutcome(batch_item.source.redacted, batch_item.destination, EXISTING)
    return {"id": item.id, **outcome.to_json()}


@contextlib.contextmanager
def task_lock(redis: Redis | None, task_id: str) -> Iterator[dict[str, Any] | None]:
    """Hold the task's lock (waiting for another copy's); yield the result of
    a copy that finished meanwhile, else None. Without Redis: no lock."""
    if redis is None:
        yield None
        return
    seconds = float(os.environ.get("S3PULL_LOCK_SECONDS") or LOCK_SECONDS)
    lock = redis.lock(f"s3pull:lock:{task_id}", timeout=seconds, sleep=0.1)
    lock.acquire(blocking=True)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(seconds / 3):
            with contextlib.suppress(Exception):  # a missed beat is retried at the next
                lock.reacquire()

    beat = threading.Thread(target=heartbeat, name="s3pull-lock", daemon=True)
    beat.start()
    try:
        done = redis.get(f"s3pull:done:{task_id}")
        yield json.loads(done) if done is not None else None
    finally:
        stop.set()
        beat.join()
        with contextlib.suppress(Exception):  # expired meanwhile: nothing to release
            lock.release()


def remember(redis: Redis | None, task_id: str, result: dict[str, Any]) -> None:
    """Keep a finished task's result for its late copies."""
    if redis is not None:
        redis.set(f"s3pull:done:{task_id}", json.dumps(result), ex=DONE_SECONDS)
