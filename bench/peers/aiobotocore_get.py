"""aiobotocore: a paginated listing, then ``--concurrency`` get_object calls in
flight (64 by default), each body read whole and written to its file."""

from __future__ import annotations

import asyncio

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from common import local_path, parse_args


async def _run(args) -> None:
    concurrency = args.concurrency or 64
    config = AioConfig(s3={"addressing_style": "path"}, max_pool_connections=concurrency)
    async with get_session().create_client("s3", endpoint_url=args.endpoint, config=config) as s3:
        if args.key:
            keys, prefix = [args.key], ""
        else:
            prefix = args.prefix
            keys = [
                obj["Key"]
                async for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=args.bucket, Prefix=prefix
                )
                for obj in page.get("Contents", [])
            ]
        gate = asyncio.Semaphore(concurrency)

        async def fetch(key: str) -> None:
            async with gate:
                response = await s3.get_object(Bucket=args.bucket, Key=key)
                async with response["Body"] as body:
                    data = await body.read()
            path = args.dest if args.key else local_path(args.dest, prefix, key)
            # A plain blocking write, as typical client code does: 64 KiB to tmpfs.
            with open(path, "wb") as f:  # noqa: ASYNC230
                f.write(data)

        await asyncio.gather(*(fetch(k) for k in keys))


def main() -> None:
    asyncio.run(_run(parse_args(__doc__)))


if __name__ == "__main__":
    main()
