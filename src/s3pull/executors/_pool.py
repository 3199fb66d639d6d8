"""The local process pool: one batch over every core.

One event loop is one core. For one large object that is plenty (its bytes
go from socket to file on worker threads that release the GIL), but a batch
of many objects spends its CPU per object on the loop (requests, signing,
temp files, results), so it is capped by one core. The pool runs the batch
in N worker processes, each its own loop, connection pool and share of the
memory budget.

The algorithm
-------------
1. **The parent plans.** It walks the batch's items (the streamed listing,
   the key list, the inventory) as the in-process batch does: keys become
   paths, and unsafe or clashing keys are refused, in the one process that
   sees every key. Refused keys and noncurrent versions are outcomes at
   once; every other item gets a number and goes to the ``Sharder``
   (``planning._shards``), whose shards wait in a bounded queue: a
   million-key listing is never held, and listing stops while the workers
   are behind.
2. **Shards go to the least loaded worker** that has fewer than ``AHEAD``
   unfinished shards, so each has the next shard at hand when one ends, and
   none hoards them. A worker waiting while the queue is empty gets the
   shard being filled, however small (a slow listing never idles workers).
3. **Each worker** (``s3pull._pool_worker``) runs the shards it receives as one
   ``download_many``, and sends outcomes and events back as JSON lines
   (``_wire``). The parent counts each outcome against its item and hands
   the events to its own subscribers: one progress display, one stream of
   outcomes in completion order, one ``BatchResult``. Object breakers stay
   in the worker that downloads the object; a worker's endpoint breaker
   changes (paused, down, closed by a probe) go through the parent to the
   other workers, so a dead endpoint pauses all of them.
4. **A worker that dies** (SIGKILL, the OOM killer) leaves items without an
   outcome. They go back to the front of the queue as one shard for a live
   worker; if none is left they fail, saying why. Their temp files (a dead
   process cannot remove them) are removed once the batch ends, unless a
   retry resumed from them.
5. **Stopping** (the caller stops iterating, ``fail_fast``, Ctrl-C of the
   CLI): the workers get SIGTERM, cancel their downloads (which removes
   their temp files and journals) and exit; one that does not within
   ``STOP_SECONDS`` is killed, and its leftovers removed.

Costs and the ``"auto"`` rule, measured on the 2-core bench machine
(``bench/``, ``wan`` profile, while other work shared the cores): a worker
starts in ~0.17 s of wall time and ~0.14 s of CPU (a fresh interpreter
importing s3pull) at ~28 MB of RSS; the parent spends ~50 us of CPU per
object (planning, JSON both ways), the workers what the in-process batch
spends. 20,000 x 16 KiB: 1,684 obj/s in process, 2,280 with 2 processes;
2000 x 64 KiB: 1,390 vs 1,363 (the start-up eats the gain); 100 x 16 MiB:
965 vs 858 MB/s (large bodies are read on worker threads that release the
GIL, so one process already uses both cores). A full bench run later gave
2000 x 64 KiB 1,334 obj/s in process and 1,510 with 2 (a key list: 1,221
and 1,410), and 1000 x 16 KiB (the demo's batch) took 1.13 s and 0.73 CPU
s in process against 1.60 s and 1.18 CPU s with 2: below ~2000 objects the
workers' start-up (~0.45 CPU s for two, plus the parent's share) costs more
than the second core gives back. Hence ``"auto"``: one worker per core
when the batch's first ``AUTO_MIN_OBJECTS`` objects are all known (from a
listing or inventory) and average at most ``AUTO_MAX_AVERAGE`` bytes, the
objects whose bodies are read on the event loop; otherwise in process.
Looking at the first two thousand items costs one more listing page
before the first download (~30-50 ms on ``wan``) for batches between one
and two pages long; a batch of one page is decided when its listing ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._errors import S3PullError
from .._results import ObjectOutcome
from ..planning import SHARD_BYTES, SHARD_ITEMS, Shard, Sharder, ShardItem
from ..scheduling import BatchItem
from ..sinks import Directory, stale_names, temp_prefix
from ._run import PoolSetup, ShardedRun, failed_outcome
from ._shard import config_to_json
from ._spawn import spawn_module
from ._wire import LINE_LIMIT, replay

#: ``processes="auto"``: how many objects decide, and the average size under
#: which they go to worker processes (bodies up to 1 MiB are read on the loop).
AUTO_MIN_OBJECTS = 2000
AUTO_MAX_AVERAGE = 1 << 20
#: Unfinished shards a worker may hold (the one it runs, the next one).
AHEAD = 2
#: Full shards waiting for a worker, at most.
QUEUED_SHARDS = 8
#: How long stopped workers get to clean up before they are killed.
STOP_SECONDS = 30.0

InProcess = Callable[[AsyncIterable[BatchItem]], AsyncGenerator[ObjectOutcome, None]]


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


async def spread(
    items: AsyncIterable[BatchItem], setup: PoolSetup, in_process: InProcess
) -> AsyncGenerator[ObjectOutcome, None]:
    """Run a batch over ``setup.config.processes`` workers, or ``in_process``.

    ``"auto"`` looks at the batch's first ``AUTO_MIN_OBJECTS`` objects; see
    the module docstring.
    """
    processes = setup.config.processes
    if processes == "auto":
        head, large, error = await _peek(items)
        items = _chain(head, items, error)
        processes = cores() if large else 1
    assert isinstance(processes, int)
    outcomes = in_process(items) if processes == 1 else Pool(setup, processes).run(items)
    async with aclosing(outcomes):
        async for outcome in outcomes:
            yield outcome


async def _peek(
    items: AsyncIterable[BatchItem],
) -> tuple[list[BatchItem], bool, Exception | None]:
    """The batch's first items, whether they make it worth processes, and
    the error that ended the items early, if one did.

    A listing that fails on its second page still has its first page
    downloaded, in process, before its error ends the batch, as it would
    without the look ahead (the error is raised after the items, by
    :func:`_chain`).
    """
    head: list[BatchItem] = []
    size = 0
    try:
        async for item in items:
            head.append(item)
            if item.listed is None:
                if item.refused is None and not item.noncurrent:
                    return head, False, None  # sizes unknown: maybe large objects
            else:
                size += item.listed.size
            if len(head) >= AUTO_MIN_OBJECTS:
                return head, size <= AUTO_MAX_AVERAGE * len(head) and cores() > 1, None
    except Exception as error:  # the listing's own failure, raised in its turn
        return head, False, error
    return head, False, None


async def _chain(
    head: list[BatchItem], rest: AsyncIterable[BatchItem], error: Exception | None = None
) -> AsyncIterator[BatchItem]:
    for item in head:
        yield item
    if error is not None:
        raise error
    async for item in rest:
        yield item


class _Worker:
    """One worker process, and the items it holds."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ready = False
        self.alive = True
        #: Items sent and not yet finished, by number.
        self.outstanding: dict[int, ShardItem] = {}
        #: Unfinished shards: items left in each, and the shard of each item.
        self.left: dict[int, int] = {}
        self.shard_of: dict[int, int] = {}
        self.last_words = ""

    @property
    def free(self) -> bool:
        return self.alive and self.ready and len(self.left) < AHEAD

    def why(self) -> str:
        """How the process ended, for an error message."""
        code = self.process.returncode
        if code is not None and code < 0:
            ended = f"was killed by {signal.Signals(-code).name}"
        else:
            ended = f"exited with status {code}"
        said = f" ({self.last_words})" if self.last_words else ""
        return f"worker process {self.process.pid} {ended}{said}"


class Pool(ShardedRun):
    """One batch over ``processes`` worker processes; see the module docstring."""

    def __init__(self, setup: PoolSetup, processes: int) -> None:
        super().__init__(setup)
        self.processes = processes
        self.workers: list[_Worker] = []
        self._sharder = Sharder(max_items=SHARD_ITEMS, max_bytes=SHARD_BYTES)
        self._queue: deque[Shard] = deque()
        self._retry: deque[Shard] = deque()
        self._wake = asyncio.Event()
        self._shards = 0
        #: Destinations whose worker died mid-download: their leftovers go at the end.
        self._orphans: list[ShardItem] = []

    async def _work(self, group: asyncio.TaskGroup, items: AsyncIterable[BatchItem]) -> None:
        group.create_task(self._feed(items))
        await self._start(group)
        await self._dispatch()
        for worker in self.workers:
            self._close_input(worker)

    # -- workers ---------------------------------------------------------------

    async def _start(self, group: asyncio.TaskGroup) -> None:
        line = init_line(self.setup, self.processes)
        for _ in range(self.processes):
            worker = _Worker(await _spawn())
            self.workers.append(worker)
            assert worker.process.stdin is not None
            worker.process.stdin.write(line)
            group.create_task(self._read(worker))
            group.create_task(self._read_errors(worker))

    async def _read(self, worker: _Worker) -> None:
        """Take in a worker's outcomes and events until it exits."""
        stdout = worker.process.stdout
        assert stdout is not None
        events = self.setup.events
        while line := await stdout.readline():
            message = json.loads(line)
            if "ready" in message:
                worker.ready = True
                self._wake.set()
            for event in message.get("e", ()):
                if event[0] == "b":
                    self._share_breaker(worker, event[1:])
                else:
                    replay(event, events)
            for number, data in message.get("o", ()):
                self._finished(worker, number)
                await self._outcomes.put(ObjectOutcome.from_json(data))
        await worker.process.wait()
        worker.alive = False
        self._wake.set()
        if not worker.ready:
            # Nothing was sent to it. Unless no worker ever got ready (then
            # none can start: the interpreter, the environment), the others
            # carry on without it, as they would after losing it later.
            if not any(other.ready for other in self.workers):
                raise S3PullError(f"cannot start a worker process: {worker.why()}")
            return
        if worker.outstanding:
            await self._lost(worker)

    async def _read_errors(self, worker: _Worker) -> None:
        """Keep the last line a worker writes on stderr: why it could not go on."""
        stderr = worker.process.stderr
        assert stderr is not None
        while line := await stderr.readline():
            text = line.decode(errors="replace").strip()
            # The line that names the error, rather than a traceback's last
            # ("<no Python frame>" after a fatal error).
            if text and ("Error" in text or not worker.last_words):
                worker.last_words = text[-300:]

    def _share_breaker(self, told_by: _Worker, change: list[Any]) -> None:
        """Pass one worker's endpoint breaker change on to the others."""
        line = json.dumps({"breaker": change}).encode() + b"\n"
        for worker in self.workers:
            stdin = worker.process.stdin
            if worker is not told_by and worker.alive and stdin and not stdin.is_closing():
                stdin.write(line)

    def _finished(self, worker: _Worker, number: int) -> None:
        del worker.outstanding[number]
        shard = worker.shard_of.pop(number)
        worker.left[shard] -= 1
        if not worker.left[shard]:
            del worker.left[shard]
            self._wake.set()

    async def _lost(self, worker: _Worker) -> None:
        """A worker died holding items: another one runs them, else they fail."""
        lost = sorted(worker.outstanding.values(), key=lambda item: item.id)
        worker.outstanding.clear()
        worker.left.clear()
        worker.shard_of.clear()
        self._orphans += lost
        if any(other.alive for other in self.workers):
            self._retry.append(Shard(tuple(lost)))
            self._wake.set()
            return
        await self._fail(lost, worker.why())

    async def _fail(self, items: list[ShardItem] | tuple[ShardItem, ...], why: str) -> None:
        for item in items:
            message = f"not downloaded: {why}, and no worker process is left to run it"
            await self._outcomes.put(failed_outcome(item, message))

    def _close_input(self, worker: _Worker) -> None:
        stdin = worker.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    async def _stop(self) -> None:
        """Stop every worker still running (SIGTERM, then SIGKILL), wait for
        them all, and remove what dead workers left behind."""
        running = [w for w in self.workers if w.process.returncode is None]
        for worker in running:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()
        waiting = [asyncio.ensure_future(w.process.wait()) for w in running]
        if waiting:
            await asyncio.wait(waiting, timeout=STOP_SECONDS)
        for worker in running:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
                self._orphans += worker.outstanding.values()
        for worker in self.workers:
            self._close_input(worker)
        if self._orphans:
            await asyncio.to_thread(remove_leftovers, self._orphans)

    # -- feeding and dispatching -------------------------------------------------

    async def _feed(self, items: AsyncIterable[BatchItem]) -> None:
        """Plan the items into shards, as fast as the workers take them."""
        async for item in self._planned(items):
            was_empty = not self._sharder.pending
            done = self._sharder.add(item)
            if done or was_empty:
                self._queue += done
                self._wake.set()
            while len(self._queue) >= QUEUED_SHARDS:
                await self._changed()
        self._queue += self._sharder.flush()
        self._fed = True
        self._wake.set()

    async def _changed(self) -> None:
        self._wake.clear()
        await self._wake.wait()

    async def _dispatch(self) -> None:
        """Hand out shards until every item has an outcome."""
        while True:
            worker = min(
                (w for w in self.workers if w.free), key=lambda w: len(w.left), default=None
            )
            alive = any(w.alive for w in self.workers)
            if worker is not None and not (self._retry or self._queue) and self._sharder.pending:
                self._queue += self._sharder.flush()  # a worker waits: take what there is
            if self._retry or self._queue:
                shard = self._retry[0] if self._retry else self._queue[0]
                if worker is not None or not alive:
                    (self._retry if self._retry else self._queue).popleft()
                    self._wake.set()  # room in the queue for the feeder
                    if worker is None:
                        await self._fail(shard.items, self.workers[-1].why())
                    else:
                        await self._send(worker, shard)
                    continue
            elif self._fed and not any(w.outstanding for w in self.workers if w.alive):
                return
            await self._changed()

    async def _send(self, worker: _Worker, shard: Shard) -> None:
        number = self._shards
        self._shards += 1
        worker.left[number] = len(shard.items)
        for item in shard.items:
            worker.outstanding[item.id] = item
            worker.shard_of[item.id] = number
        stdin = worker.process.stdin
        assert stdin is not None
        stdin.write(json.dumps({"shard": shard.to_json()}).encode() + b"\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdin.drain()  # a dead worker's items come back when its reader sees it


def init_line(setup: PoolSetup, processes: int) -> bytes:
    """A worker's first line: its configuration, with its share of the budget."""
    share = setup.config.memory_limit // processes
    config = replace(setup.config, memory_limit=share, processes=1)
    init = {
        "init": {
            "config": config_to_json(config),
            "endpoint": setup.endpoint,
            "options": setup.options.to_json(),
            "events": bool(setup.events.subscribers),
        }
    }
    return json.dumps(init).encode() + b"\n"


async def _spawn() -> asyncio.subprocess.Process:
    """Start one worker: a fresh interpreter that imports this very s3pull."""
    return await spawn_module("s3pull._pool_worker", what="a worker process", limit=LINE_LIMIT)


def remove_leftovers(items: list[ShardItem]) -> None:
    """Remove the temp files and journals dead workers left for ``items``
    (none that a live download holds: they are locked)."""
    now = time.time()
    for item in items:
        path = Path(item.path)
        root = Path(item.root) if item.root is not None else None
        try:
            directory = Directory.open(path.parent, root=root, create=False)
        except (OSError, S3PullError):
            continue
        with directory:
            prefix = temp_prefix(path)
            for name in stale_names(directory, 0, now=now):
                if name.startswith(prefix):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=directory.fd)
