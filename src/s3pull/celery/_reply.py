"""The reply channel: outcomes stream back from the workers through Redis.

A task's return value arrives once the task has finished. The submitting
process wants more: each object's outcome as it finishes (progress, ``--json``
lines, the item a dead worker never finished). So every shard task of a
batch also appends its outcomes to one Redis list, the batch's reply key,
and the submitter pops them (``BLPOP``) in the order they come.

Messages are JSON: ``{"t": task id, "o": [[item id, outcome], ...], "e":
[event, ...]}`` as outcomes are gathered (up to ``FLUSH_ITEMS`` or
``FLUSH_SECONDS``), then ``{"t": task id, "end": true}`` once the task is
done with its shard. Events (``"e"``, the local pool's encoding, see
``s3pull.executors._wire``) come only when the submitter has subscribers:
queued, retried, done, failed, and the bytes done of each object in flight,
sent every ``PROGRESS_SECONDS`` at most even while no object finishes, so
that the submitter's bars move for a large object. A
shard delivered twice may send an item's outcome twice: the submitter keeps
the first. The key expires ``EXPIRES`` seconds after the last message, so an
abandoned batch leaves nothing behind for long.
"""

from __future__ import annotations

import json
from typing import Any

#: Outcomes gathered before they are sent, at most, and how long they wait.
FLUSH_ITEMS = 64
FLUSH_SECONDS = 0.05
#: How often the progress of objects in flight is sent, at most.
PROGRESS_SECONDS = 0.25
#: How long a batch's reply key lives after its last message.
EXPIRES = 24 * 3600

Redis = Any  # redis.Redis: the package is typed loosely enough that Any is as precise


def reply_key(batch: str) -> str:
    """The Redis list a batch's outcomes go to."""
    return f"s3pull:reply:{batch}"


def send(redis: Redis, key: str, message: dict[str, Any]) -> None:
    """Append one message to the reply list, and keep the list alive."""
    with redis.pipeline() as pipe:
        pipe.rpush(key, json.dumps(message))
        pipe.expire(key, EXPIRES)
        pipe.execute()


def receive(redis: Redis, key: str, timeout: float) -> dict[str, Any] | None:
    """The next message, or None after ``timeout`` seconds without one."""
    popped = redis.blpop([key], timeout=timeout)
    if popped is None:
        return None
    message: dict[str, Any] = json.loads(popped[1])
    return message
