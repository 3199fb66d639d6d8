"""boto3 as most code uses it: ``download_file`` with the default TransferConfig
(8 MiB parts, 10 threads). For a prefix: a paginated listing, then
``download_file`` per key from a thread pool (``--concurrency`` threads)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from common import local_path, parse_args


def main() -> None:
    args = parse_args(__doc__)
    threads = args.concurrency or 32
    # The pool must be as large as the thread count, or urllib3 discards
    # connections ("Connection pool is full") and reconnects all the time.
    config = Config(s3={"addressing_style": "path"}, max_pool_connections=max(10, threads))
    s3 = boto3.client("s3", endpoint_url=args.endpoint, config=config)
    if args.key:
        s3.download_file(args.bucket, args.key, args.dest)
        return
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=args.bucket, Prefix=args.prefix
        )
        for obj in page.get("Contents", [])
    ]
    with ThreadPoolExecutor(threads) as pool:
        futures = [
            pool.submit(s3.download_file, args.bucket, k, local_path(args.dest, args.prefix, k))
            for k in keys
        ]
        for f in futures:
            f.result()


if __name__ == "__main__":
    main()
