"""The local process pool: one batch over every core.

One event loop is one core. For one large object that is plenty (its bytes
go from socket to file on worker threads that release the GIL), but a batch
of many objects spends its CPU per object on the loop (requests, signing,
temp files, results), so it is capped by one core. The pool runs the batch
in N worker processes, each its own loop, connection pool and share of the
memory budget, and under ``"auto"`` in the parent too.

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
4. **The parent's own share** (``"auto"``): the parent is one more taker
   of shards, ready from the first item, its shards run by the client's own
   batch on this loop (``_Parent``). Its endpoint changes go to the workers
   and theirs are adopted by its breakers; its budget lends the workers'
   shares away (``MemoryBudget.lend``) and keeps one. Only an idle budget
   lends: when the client is busy with something else that holds budget
   (another batch, an inventory's reader), the batch goes to one worker per
   core instead. Workers without the parent share what its budget does not
   plan on for itself (``MemoryBudget.planned``: an inventory's reader keeps
   half), told in their first line once the first item is planned, so the
   tree holds the one budget either way; a budget too small for one stream
   per core keeps ``"auto"`` in process. A worker that cannot start is no
   error when the parent takes part: the parent runs what that worker would
   have, and once no worker is left (none could be made, or all have
   ended) it gets their shares back.
5. **A worker that dies** (SIGKILL, the OOM killer) leaves items without an
   outcome. They go back to the front of the queue as one shard for a live
   worker; if none is left they fail, saying why. Their temp files (a dead
   process cannot remove them) are removed once the batch ends, unless a
   retry resumed from them.
6. **Stopping** (the caller stops iterating, ``fail_fast``, Ctrl-C of the
   CLI): the workers get SIGTERM, cancel their downloads (which removes
   their temp files and journals) and exit; one that does not within
   ``STOP_SECONDS`` is killed, and its leftovers removed. The parent's own
   downloads are cancelled as in process.

Costs and the ``"auto"`` rule, measured on the 2-core bench machine
(``bench/``, ``wan`` profile, while other work shared the cores): a worker
starts in ~0.2 s of wall time and ~0.14 s of CPU (a fresh interpreter
importing s3pull) at ~28 MB of RSS; the parent spends ~50 us of CPU per
object it hands out (planning, JSON both ways), the workers what the
in-process batch spends. Workers alone, the start-up is on the critical
path: 2000 x 64 KiB with ``processes=2`` had its first object ~0.43 s after
the command started, against ~0.28 s in process, and the gain of the second
core was gone (1.07-1.10 s against 1.23-1.38 s; s5cmd 0.75-0.85 s). Hence
``"auto"``: the parent downloads from the first item on, and once the
batch's first ``AUTO_MIN_OBJECTS`` objects (one full listing page) are
known and average at most ``AUTO_MAX_AVERAGE`` bytes (objects whose bodies
are read on the event loop), it starts ``cores() - 1`` workers, whose
start-up runs on the cores the parent does not use; 2000 x 64 KiB then took
0.91-1.02 s. One worker per core besides the parent was slower (1.03-1.14
s): the parent's own share is a core's work. A batch of one page is no
worse off (1000 x 16 KiB: 0.62 s against 0.65 s in process) and pays ~0.2
CPU s more. Fewer objects, larger ones, or unknown sizes (a key list) stay
in process. An explicit ``processes=N`` is N workers and a parent that only
plans and merges: for machines with many cores, where merging their
outcomes is a core's work of its own.
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._config import TransferConfig
from .._errors import ConfigError, S3PullError
from .._results import ObjectOutcome
from ..planning import SHARD_BYTES, SHARD_ITEMS, Shard, Sharder, ShardItem, holdable
from ..scheduling import BatchItem, Breakers, BreakerState, Lending, MemoryBudget, planned_item
from ..sinks import Directory, stale_names, temp_prefix
from ._run import PoolSetup, ShardedRun, failed_outcome
from ._shard import config_to_json, run_shards
from ._spawn import spawn_module
from ._wire import LINE_LIMIT, adopt, replay

#: ``processes="auto"``: how many objects decide (a listing page), and the
#: average size under which workers join the parent (bodies up to 1 MiB are
#: read on the loop).
AUTO_MIN_OBJECTS = 1000
AUTO_MAX_AVERAGE = 1 << 20
#: Unfinished shards a worker may hold (the one it runs, the next one).
AHEAD = 2
#: Full shards waiting for a worker, at most.
QUEUED_SHARDS = 8
#: How long stopped workers get to clean up before they are killed.
STOP_SECONDS = 30.0

Run = Callable[[AsyncIterable[BatchItem]], AsyncGenerator[ObjectOutcome, None]]


@dataclass(frozen=True)
class InProcess:
    """The client's own batch: what runs a batch in this process, and the
    parent's share of a pool it takes part in (``"auto"``).

    Attributes:
        run: the in-process batch (``Batch.run``).
        budget: the client's memory budget; the workers' shares are lent out
            of it while the pool runs.
        breakers: the client's breakers; their endpoint changes go to the
            workers, and the workers' come back to them.
    """

    run: Run
    budget: MemoryBudget
    breakers: Breakers


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
    lent: Lending | None = None
    if processes == "auto":
        head, many_small, error = await _peek(items)
        items = _chain(head, items, error)
        processes = 1
        if many_small and _each_share_holds_a_stream(setup.config, in_process.budget):
            lent = _lend_workers_shares(setup.config, in_process.budget)
            # A budget in use (another batch of the client, an inventory's
            # reader) cannot lend: then workers only, as ``processes=N``.
            processes = cores() - 1 if lent is not None else cores()
    assert isinstance(processes, int)
    if lent is not None:
        outcomes = Pool(setup, processes, parent=in_process, lent=lent).run(items)
    elif processes == 1:
        outcomes = in_process.run(items)
    else:
        outcomes = Pool(setup, processes, parent_budget=in_process.budget).run(items)
    try:
        async with aclosing(outcomes):
            async for outcome in outcomes:
                yield outcome
    finally:
        if lent is not None:
            lent.give_back()


def _each_share_holds_a_stream(config: TransferConfig, budget: MemoryBudget) -> bool:
    """Whether ``cores()`` shares of what the budget does not plan on (see
    :func:`init_line`) each hold one stream: else ``"auto"`` stays in
    process rather than refuse a batch that fits there."""
    return (config.memory_limit - budget.planned) // cores() >= config.stream_cost


def _lend_workers_shares(config: TransferConfig, budget: MemoryBudget) -> Lending | None:
    """The parent keeps one share of ``cores()``; the others go to the workers."""
    share = config.memory_limit // cores()
    return budget.lend(config.memory_limit - share, holdable=holdable(share, config.stream_cost))


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


class _Share:
    """Who runs shards (a worker process, or the parent itself), and the items
    it holds."""

    def __init__(self) -> None:
        self.ready = False
        self.alive = True
        #: Items sent and not yet finished, by number.
        self.outstanding: dict[int, ShardItem] = {}
        #: Unfinished shards: items left in each, and the shard of each item.
        self.left: dict[int, int] = {}
        self.shard_of: dict[int, int] = {}

    @property
    def free(self) -> bool:
        return self.alive and self.ready and len(self.left) < AHEAD

    async def take(self, shard: Shard) -> None:
        """Hand it ``shard`` to run."""
        raise NotImplementedError

    def close(self) -> None:
        """No more shards will come."""
        raise NotImplementedError


class _Worker(_Share):
    """One worker process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        super().__init__()
        self.process = process
        self.last_words = ""

    async def take(self, shard: Shard) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps({"shard": shard.to_json()}).encode() + b"\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdin.drain()  # a dead worker's items come back when its reader sees it

    def close(self) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    async def drain(self) -> None:
        """Read what the ended process left in its pipes: their ends are
        then seen, and its transport closes before the loop does (a batch
        that failed before its readers got there, for one)."""
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                await pipe.read()

    def why(self) -> str:
        """How the process ended, for an error message."""
        code = self.process.returncode
        if code is not None and code < 0:
            ended = f"was killed by {signal.Signals(-code).name}"
        else:
            ended = f"exited with status {code}"
        said = f" ({self.last_words})" if self.last_words else ""
        return f"worker process {self.process.pid} {ended}{said}"


class _Parent(_Share):
    """The parent's own share: shards run by the client's batch, on this loop."""

    def __init__(self, own: InProcess) -> None:
        super().__init__()
        self.own = own
        self.ready = True
        self._shards: asyncio.Queue[Shard | None] = asyncio.Queue()

    async def take(self, shard: Shard) -> None:
        self._shards.put_nowait(shard)

    def close(self) -> None:
        self._shards.put_nowait(None)

    async def shards(self) -> AsyncIterator[Shard]:
        while (shard := await self._shards.get()) is not None:
            yield shard

    def iter_download_many(
        self,
        items: AsyncIterable[ShardItem],
        destination: None = None,
        *,
        skip_existing: bool = False,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> AsyncGenerator[ObjectOutcome, None]:
        """``run_shards``'s downloader: the client's batch (which has the
        batch's options already)."""

        async def batch_items() -> AsyncIterator[BatchItem]:
            async for item in items:
                yield planned_item(item)

        return self.own.run(batch_items())


class Pool(ShardedRun):
    """One batch over ``processes`` worker processes, and the parent too when
    it is given its share; see the module docstring."""

    def __init__(
        self,
        setup: PoolSetup,
        processes: int,
        *,
        parent: InProcess | None = None,
        lent: Lending | None = None,
        parent_budget: MemoryBudget | None = None,
    ) -> None:
        super().__init__(setup)
        self.processes = processes
        self.workers: list[_Worker] = []
        self.parent = _Parent(parent) if parent is not None else None
        #: The workers' shares of the parent's budget (``spread`` gives them back).
        self._lent = lent
        #: The parent's budget, whose planned shares (an inventory's reader)
        #: the workers do without.
        self._parent_budget = parent_budget
        #: Set once the feed has planned its first item, or has ended.
        self._first_item = asyncio.Event()
        self._sharder = Sharder(max_items=SHARD_ITEMS, max_bytes=SHARD_BYTES)
        self._queue: deque[Shard] = deque()
        self._retry: deque[Shard] = deque()
        self._wake = asyncio.Event()
        self._shards = 0
        #: Destinations whose worker died mid-download: their leftovers go at the end.
        self._orphans: list[ShardItem] = []

    @property
    def _shares(self) -> list[_Share]:
        return ([self.parent] if self.parent is not None else []) + list(self.workers)

    async def _work(self, group: asyncio.TaskGroup, items: AsyncIterable[BatchItem]) -> None:
        group.create_task(self._feed(items))
        if self.parent is not None:
            group.create_task(self._run_parent(self.parent))
        await self._start(group)
        await self._dispatch()
        for share in self._shares:
            share.close()

    # -- workers ---------------------------------------------------------------

    @property
    def _budget_shares(self) -> int:
        return self.processes + (self.parent is not None)

    async def _start(self, group: asyncio.TaskGroup) -> None:
        for _ in range(self.processes):
            try:
                worker = _Worker(await _spawn())
            except S3PullError:
                if self.parent is None:
                    raise
                break  # the parent goes on with the workers it has
            self.workers.append(worker)
            group.create_task(self._read(worker))
            group.create_task(self._read_errors(worker))
        if not self.workers and self._lent is not None:
            self._lent.give_back()  # nobody to spend the workers' shares: the parent's again
        # The budget's shares are told once the first item is planned: by
        # then whatever the items come from (an inventory's reader) has
        # planned its own share. The interpreters start meanwhile.
        await self._first_item.wait()
        budget = self._parent_budget
        planned = budget.planned if budget is not None else 0
        line = init_line(self.setup, self._budget_shares, planned=planned)
        for worker in self.workers:
            assert worker.process.stdin is not None
            worker.process.stdin.write(line)

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
        if self._lent is not None and not any(other.alive for other in self.workers):
            # The parent runs what is left on its own: the workers' shares
            # are its own again.
            self._lent.give_back()
        if not worker.ready:
            # Nothing was sent to it. Unless nobody ever got ready (then no
            # worker can start: the interpreter, the environment), the others
            # carry on without it, as they would after losing it later.
            if not any(other.ready for other in self._shares):
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

    async def _run_parent(self, parent: _Parent) -> None:
        """The parent's own shards, with the one share of the budget its
        lending left it (``spread`` lends the workers theirs)."""
        own = parent.own
        previous = own.breakers.on_endpoint

        def tell_workers(endpoint: str, change: str, state: BreakerState) -> None:
            self._share_breaker(parent, [endpoint, change, state.failures, state.last_failure])

        own.breakers.on_endpoint = tell_workers
        try:
            outcomes = run_shards(parent, parent.shards(), self.setup.options)
            async with aclosing(outcomes):
                async for number, outcome in outcomes:
                    self._finished(parent, number)
                    await self._outcomes.put(outcome)
        finally:
            own.breakers.on_endpoint = previous

    def _share_breaker(self, told_by: _Share, change: list[Any]) -> None:
        """Pass one endpoint breaker change on to every other share."""
        if self.parent is not None and told_by is not self.parent:
            self.parent.own.breakers.adopt(*adopt(change))
        line = json.dumps({"breaker": change}).encode() + b"\n"
        for worker in self.workers:
            stdin = worker.process.stdin
            if worker is not told_by and worker.alive and stdin and not stdin.is_closing():
                stdin.write(line)

    def _finished(self, share: _Share, number: int) -> None:
        del share.outstanding[number]
        shard = share.shard_of.pop(number)
        share.left[shard] -= 1
        if not share.left[shard]:
            del share.left[shard]
            self._wake.set()

    async def _lost(self, worker: _Worker) -> None:
        """A worker died holding items: another one runs them, else they fail."""
        lost = sorted(worker.outstanding.values(), key=lambda item: item.id)
        worker.outstanding.clear()
        worker.left.clear()
        worker.shard_of.clear()
        self._orphans += lost
        if any(other.alive for other in self._shares):
            self._retry.append(Shard(tuple(lost)))
            self._wake.set()
            return
        await self._fail(lost, worker.why())

    async def _fail(self, items: list[ShardItem] | tuple[ShardItem, ...], why: str) -> None:
        for item in items:
            message = f"not downloaded: {why}, and no worker process is left to run it"
            await self._outcomes.put(failed_outcome(item, message))

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
            worker.close()
            await worker.drain()
        if self._orphans:
            await asyncio.to_thread(remove_leftovers, self._orphans)

    # -- feeding and dispatching -------------------------------------------------

    async def _feed(self, items: AsyncIterable[BatchItem]) -> None:
        """Plan the items into shards, as fast as the workers take them."""
        async for item in self._planned(items):
            self._first_item.set()
            was_empty = not self._sharder.pending
            done = self._sharder.add(item)
            if done or was_empty:
                self._queue += done
                self._wake.set()
            while len(self._queue) >= QUEUED_SHARDS:
                await self._changed()
        self._queue += self._sharder.flush()
        self._fed = True
        self._first_item.set()
        self._wake.set()

    async def _changed(self) -> None:
        self._wake.clear()
        await self._wake.wait()

    async def _dispatch(self) -> None:
        """Hand out shards until every item has an outcome."""
        while True:
            shares = self._shares
            share = min((s for s in shares if s.free), key=lambda s: len(s.left), default=None)
            alive = any(s.alive for s in shares)
            if share is not None and not (self._retry or self._queue) and self._sharder.pending:
                self._queue += self._sharder.flush()  # a worker waits: take what there is
            if self._retry or self._queue:
                shard = self._retry[0] if self._retry else self._queue[0]
                if share is not None or not alive:
                    (self._retry if self._retry else self._queue).popleft()
                    self._wake.set()  # room in the queue for the feeder
                    if share is None:
                        await self._fail(shard.items, self.workers[-1].why())
                    else:
                        await self._send(share, shard)
                    continue
            elif self._fed and not any(s.outstanding for s in shares if s.alive):
                return
            await self._changed()

    async def _send(self, share: _Share, shard: Shard) -> None:
        number = self._shards
        self._shards += 1
        share.left[number] = len(shard.items)
        for item in shard.items:
            share.outstanding[item.id] = item
            share.shard_of[item.id] = number
        await share.take(shard)


def init_line(setup: PoolSetup, shares: int, *, planned: int = 0) -> bytes:
    """A worker's first line: its configuration, with its share (one of
    ``shares``) of the budget, less the ``planned`` bytes the parent counts
    on for itself (an inventory's reader).

    Raises:
        ConfigError: the share would not hold one stream.
    """
    config = setup.config
    share = (config.memory_limit - planned) // shares
    if share < config.stream_cost:
        reader = f" once {planned} are planned for the parent's reader" if planned else ""
        raise ConfigError(
            f"memory_limit {config.memory_limit} bytes cannot be shared by {shares} processes"
            f"{reader}: each needs at least one stream ({config.stream_cost} bytes)"
        )
    config = replace(config, memory_limit=share, processes=1)
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
