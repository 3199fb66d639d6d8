"""obstore (Rust object_store) in two styles:

* ``--ranges 0``: one ``obstore.get`` whose body is streamed to the file
  (the default 10 MiB chunks): a single connection.
* ``--ranges N``: N ``get_range_async`` calls of ``--range-size`` bytes in
  flight, each range written at its offset with ``os.pwrite`` once it arrives.

For a prefix: ``obstore.list`` then ``--concurrency`` streamed ``get_async``.
The client timeout is raised from object_store's 30 s default, which a single
stream of 1 GiB at WAN speed comes close to."""

from __future__ import annotations

import asyncio
import os

import obstore
from common import local_path, parse_args
from obstore.store import S3Store


def _options(parser) -> None:
    parser.add_argument("--ranges", type=int, default=0, help="ranges in flight; 0: one stream")
    parser.add_argument("--range-size", type=int, default=16 * 1024 * 1024)


def _store(args) -> S3Store:
    return S3Store(
        args.bucket,
        endpoint=args.endpoint,
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        virtual_hosted_style_request=False,
        client_options={"allow_http": True, "timeout": "300s"},
    )


def _stream(store: S3Store, key: str, dest: str) -> None:
    with open(dest, "wb") as f:
        for chunk in obstore.get(store, key).stream():
            f.write(chunk)


async def _ranges(store: S3Store, key: str, dest: str, in_flight: int, range_size: int) -> None:
    size = (await obstore.head_async(store, key))["size"]
    gate = asyncio.Semaphore(in_flight)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:

        async def fetch(start: int) -> None:
            async with gate:
                data = await obstore.get_range_async(
                    store, key, start=start, length=min(range_size, size - start)
                )
                os.pwrite(fd, memoryview(data), start)

        await asyncio.gather(*(fetch(s) for s in range(0, size, range_size)))
    finally:
        os.close(fd)


async def _prefix(store: S3Store, prefix: str, dest: str, concurrency: int) -> None:
    metas = [m for chunk in obstore.list(store, prefix, chunk_size=1000) for m in chunk]
    gate = asyncio.Semaphore(concurrency)

    async def fetch(key: str) -> None:
        async with gate:
            result = await obstore.get_async(store, key)
            # Blocking writes of small chunks, as typical client code does.
            with open(local_path(dest, prefix, key), "wb") as f:  # noqa: ASYNC230
                async for chunk in result:
                    f.write(chunk)

    await asyncio.gather(*(fetch(m["path"]) for m in metas))


def main() -> None:
    args = parse_args(__doc__, _options)
    store = _store(args)
    if args.prefix:
        asyncio.run(_prefix(store, args.prefix, args.dest, args.concurrency or 64))
    elif args.ranges:
        asyncio.run(_ranges(store, args.key, args.dest, args.ranges, args.range_size))
    else:
        _stream(store, args.key, args.dest)


if __name__ == "__main__":
    main()
