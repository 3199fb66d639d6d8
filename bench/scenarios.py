"""What is measured: the scenarios, the clients, and the command line of each
client for each kind of job.

A job is either one object to one file, or every object under a prefix into a
directory (the listing is part of the job). Clients are described by how a
typical user would run them; where a peer needs a concurrency chosen for a
prefix download, the value is the one its documentation or common practice
suggests, and it is written here next to the command.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import provision
from bench.data import BUCKET

PEERS_DIR = Path(__file__).resolve().parent / "peers"
LARGE_KEY = "large/object.bin"
MEDIUM_PREFIX = "medium/"
SMALL_PREFIX = "small/"
MID_PREFIX = "mid/"
TINY_PREFIX = "tiny/"
SWEEP = (1, 2, 4, 8, 16, 32)
#: ``--processes`` values measured for batches.
PROCESSES = (1, 2, 3, 4)
#: Celery worker children (``s3pull worker --concurrency N``) measured for batches.
CELERY_CHILDREN = (1, 2)


@dataclass(frozen=True)
class Job:
    endpoint: str
    key: str | None = None  # one object ...
    prefix: str | None = None  # ... or everything under a prefix
    dest: Path = Path()  # file for key, directory for prefix
    #: A key-list job: these keys (all under ``prefix``) land at their full
    #: key under ``dest``, from a list the client reads from ``list_file``.
    keys: tuple[str, ...] = ()
    list_file: Path | None = None


@dataclass(frozen=True)
class Client:
    name: str
    label: str
    venv: str | None  # peer venv; None for s3pull (the running interpreter's venv)
    script: str | None = None  # peer script in bench/peers/
    extra: tuple[str, ...] = ()  # extra arguments for single-object jobs
    prefix_concurrency: dict[str, int] = field(default_factory=dict)  # prefix -> value
    prefix_ok: bool = True  # False: the client has no prefix mode here
    prefix_label: str = ""  # label for prefix jobs; {n} is the prefix concurrency
    list_label: str = ""  # label for key-list jobs; "" means no key-list mode here
    #: > 0: run with ``--celery URL`` on a worker of this many children,
    #: started for the scenario (bench/fleet.py).
    fleet: int = 0

    @property
    def is_s3pull(self) -> bool:
        return self.name.startswith("s3pull")

    def label_for(self, job: Job) -> str:
        if job.list_file is not None:
            return self.list_label or self.label
        if job.prefix is None or not self.prefix_label:
            return self.label
        return self.prefix_label.format(n=self.prefix_concurrency.get(job.prefix, ""))


CLIENTS: dict[str, Client] = {
    c.name: c
    for c in [
        Client(
            "s3pull",
            "s3pull cp",
            None,
            prefix_label="s3pull cp --recursive",
            list_label="s3pull cp --from-file KEYS",
        ),
        Client(
            "boto3",
            "boto3 download_file",
            "boto3",
            "boto3_get.py",
            # 16 MiB objects: each download_file already runs 2 parts in
            # parallel, so fewer threads; 4 MiB and 64 KiB objects: one GET
            # per thread.
            prefix_concurrency={MEDIUM_PREFIX: 8, MID_PREFIX: 16, SMALL_PREFIX: 32},
            prefix_label="boto3 list + {n} threads x download_file",
        ),
        Client(
            "crt",
            "AWS CRT transfer manager",
            "crt",
            "crt_get.py",
            prefix_label="AWS CRT transfer manager, every key submitted",
        ),
        Client(
            "obstore",
            "obstore get (1 stream)",
            "obstore",
            "obstore_get.py",
            prefix_concurrency={MEDIUM_PREFIX: 16, MID_PREFIX: 32, SMALL_PREFIX: 64},
            prefix_label="obstore list + {n} concurrent get",
        ),
        Client(
            "obstore-ranges",
            "obstore 8 x 16 MiB ranges",
            "obstore",
            "obstore_get.py",
            extra=("--ranges", "8", "--range-size", str(16 * 1024 * 1024)),
            prefix_ok=False,
        ),
        Client(
            "aiobotocore",
            "aiobotocore get_object",
            "aiobotocore",
            "aiobotocore_get.py",
            prefix_concurrency={MEDIUM_PREFIX: 64, MID_PREFIX: 64, SMALL_PREFIX: 64},
            prefix_label="aiobotocore list + {n} concurrent get_object",
        ),
        Client(
            "s5cmd",
            "s5cmd cp",
            "s5cmd",
            prefix_label="s5cmd cp 'prefix/*'",
            list_label="s5cmd run FILE (one cp per key)",
        ),
        Client(
            "s3pull-16MiB",
            "s3pull cp --memory-limit 16MiB",
            None,
            extra=("--memory-limit", "16MiB"),
        ),
        *[
            Client(
                f"s3pull-c{n}",
                f"s3pull cp --concurrency {n}",
                None,
                extra=("--concurrency", str(n)),
            )
            for n in SWEEP
        ],
        *[
            Client(
                f"s3pull-p{n}",
                f"s3pull cp --processes {n}",
                None,
                extra=("--processes", str(n)),
                prefix_label=f"s3pull cp --recursive --processes {n}",
                list_label=f"s3pull cp --from-file KEYS --processes {n}",
            )
            for n in PROCESSES
        ],
        *[
            Client(
                f"s3pull-celery{n}",
                f"s3pull cp --celery, worker of {n}",
                None,
                prefix_label=f"s3pull cp --recursive --celery, worker --concurrency {n}",
                list_label=f"s3pull cp --from-file KEYS --celery, worker --concurrency {n}",
                fleet=n,
            )
            for n in CELERY_CHILDREN
        ],
    ]
}


#: ``python -m bench.run --baseline PATH``: s3pull run exactly as the
#: ``s3pull`` client is, by another checkout's entry point (A/B of two commits).
BASELINE = "s3pull-base"
CLIENTS[BASELINE] = Client(
    BASELINE,
    "s3pull cp (baseline)",
    None,
    prefix_label="s3pull cp --recursive (baseline)",
    list_label="s3pull cp --from-file KEYS (baseline)",
)
_baseline_binary: Path | None = None


def use_baseline(binary: Path) -> None:
    """Run the ``s3pull-base`` client with ``binary``."""
    global _baseline_binary
    _baseline_binary = binary


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str  # a template: {large}, {medium}, {small} name the data set's sizes
    profile: str  # "raw" or "wan"
    target: str  # "large", "medium", "mid", "small" or "tiny"
    dest: str  # "shm" or "disk"
    clients: tuple[str, ...]
    quick: bool = False  # part of --quick
    from_list: bool = False  # the objects come from a key list, not a listing

    @property
    def per_object(self) -> bool:
        """Small objects are counted in objects/s, the rest in MB/s."""
        return self.target in ("small", "tiny")


_LARGE = ("s3pull", "boto3", "crt", "obstore", "obstore-ranges", "s5cmd")
_CELERY = tuple(f"s3pull-celery{n}" for n in CELERY_CHILDREN)
SCENARIOS: list[Scenario] = [
    Scenario(
        "large-raw-shm",
        "{large} object, loopback, to tmpfs",
        "raw",
        "large",
        "shm",
        _LARGE,
        quick=True,
    ),
    Scenario("large-raw-disk", "{large} object, loopback, to disk", "raw", "large", "disk", _LARGE),
    Scenario(
        "large-wan-shm", "{large} object, wan, to tmpfs", "wan", "large", "shm", _LARGE, quick=True
    ),
    Scenario("large-wan-disk", "{large} object, wan, to disk", "wan", "large", "disk", _LARGE),
    Scenario(
        "medium-wan",
        "{medium} under a prefix, wan, to tmpfs",
        "wan",
        "medium",
        "shm",
        ("s3pull", "s3pull-p1", "s3pull-p2", *_CELERY, "boto3", "crt", "obstore", "s5cmd"),
    ),
    Scenario(
        "mid-wan",
        "{mid} under a prefix, wan, to tmpfs",
        "wan",
        "mid",
        "shm",
        ("s3pull", "s3pull-p1", "s3pull-p2", "boto3", "crt", "obstore", "s5cmd"),
    ),
    Scenario(
        "small-wan",
        "{small} under a prefix (listing included), wan, to tmpfs",
        "wan",
        "small",
        "shm",
        (
            "s3pull",
            "s3pull-p1",
            "s3pull-p2",
            *_CELERY,
            "boto3",
            "crt",
            "obstore",
            "aiobotocore",
            "s5cmd",
        ),
        quick=True,
    ),
    Scenario(
        "small-list-wan",
        "{small} from a key list (no listing), wan, to tmpfs",
        "wan",
        "small",
        "shm",
        ("s3pull", "s3pull-p1", "s3pull-p2", "s5cmd"),
        from_list=True,
    ),
    Scenario(
        "tiny-wan",
        "{tiny} under a prefix (listing included), wan, to tmpfs",
        "wan",
        "tiny",
        "shm",
        ("s3pull", "s3pull-p1", "s3pull-p2", "s5cmd"),
    ),
    Scenario(
        "processes-medium-wan",
        "{medium} under a prefix, wan, to tmpfs: s3pull throughput vs --processes",
        "wan",
        "medium",
        "shm",
        tuple(f"s3pull-p{n}" for n in PROCESSES),
    ),
    Scenario(
        "processes-tiny-wan",
        "{tiny} under a prefix, wan, to tmpfs: s3pull objects/s vs --processes",
        "wan",
        "tiny",
        "shm",
        tuple(f"s3pull-p{n}" for n in PROCESSES),
    ),
    Scenario(
        "memlimit-raw",
        "{large} object, loopback, to tmpfs, s3pull with a 16 MiB memory budget",
        "raw",
        "large",
        "shm",
        ("s3pull", "s3pull-16MiB", "s5cmd"),
        quick=True,
    ),
    Scenario(
        "concurrency-wan",
        "{large} object, wan, to tmpfs: s3pull throughput vs --concurrency",
        "wan",
        "large",
        "shm",
        tuple(f"s3pull-c{n}" for n in SWEEP),
    ),
]


def s3pull_binary() -> Path | None:
    """The ``s3pull`` entry point of the environment running the benchmark."""
    candidate = Path(sys.executable).parent / "s3pull"
    return candidate if candidate.exists() else None


def command(client: Client, job: Job) -> list[str] | None:
    """The argv that runs ``client`` on ``job``; None if it has no such mode."""
    if job.prefix is not None and not client.prefix_ok:
        return None
    if job.list_file is not None:
        return _from_list(client, job)
    if client.venv is None:
        return _s3pull(client, job)
    if client.name == "s5cmd":
        return _s5cmd(job)
    argv = [
        str(provision.venv_python(client.venv)),
        str(PEERS_DIR / client.script),
        "--endpoint",
        job.endpoint,
        "--bucket",
        BUCKET,
        "--dest",
        str(job.dest),
    ]
    if job.key is not None:
        return [*argv, "--key", job.key, *client.extra]
    concurrency = client.prefix_concurrency.get(job.prefix)
    argv += ["--prefix", job.prefix]
    return argv + (["--concurrency", str(concurrency)] if concurrency else [])


def _binary(client: Client) -> Path | None:
    return _baseline_binary if client.name == BASELINE else s3pull_binary()


def _s3pull(client: Client, job: Job) -> list[str] | None:
    binary = _binary(client)
    if binary is None:
        return None
    common = ["--endpoint-url", job.endpoint, "--quiet", *client.extra]
    if job.key is not None:
        return [str(binary), "cp", f"s3://{BUCKET}/{job.key}", str(job.dest), *common]
    return [
        str(binary),
        "cp",
        f"s3://{BUCKET}/{job.prefix}",
        f"{job.dest}/",
        "--recursive",
        *common,
    ]


def _s5cmd(job: Job) -> list[str]:
    # Defaults otherwise: 256 workers, 5 parts of 50 MiB in flight per file.
    # A custom endpoint makes s5cmd use path-style URLs.
    base = [str(provision.s5cmd_binary()), "--endpoint-url", job.endpoint, "--log", "error", "cp"]
    if job.key is not None:
        return [*base, f"s3://{BUCKET}/{job.key}", str(job.dest)]
    return [*base, f"s3://{BUCKET}/{job.prefix}*", f"{job.dest}/"]


def _from_list(client: Client, job: Job) -> list[str] | None:
    """A key-list job: write the list the client reads, return its argv."""
    assert job.list_file is not None
    if not client.list_label:
        return None
    if client.is_s3pull:
        binary = _binary(client)
        if binary is None:
            return None
        job.list_file.write_text("".join(f"{key}\n" for key in job.keys))
        return [
            str(binary),
            "cp",
            "--from-file",
            str(job.list_file),
            f"s3://{BUCKET}",
            f"{job.dest}/",
            "--endpoint-url",
            job.endpoint,
            "--quiet",
            *client.extra,
        ]
    # s5cmd run: one command per line, run by its worker pool (256 by default).
    lines = (f"cp s3://{BUCKET}/{key} {job.dest / key}\n" for key in job.keys)
    job.list_file.write_text("".join(lines))
    s5cmd = str(provision.s5cmd_binary())
    return [s5cmd, "--endpoint-url", job.endpoint, "--log", "error", "run", str(job.list_file)]
