"""The parsing side of the ``csv-*`` benchmark scenarios (run as a client).

Every mode does the same work per row — count it, add up its size column —
and prints ``rows N size S`` so the runner can check the answer:

    parse_csv.py local PATH                      gzip.open + csv.reader on a local file
    parse_csv.py iter-csv URL --endpoint E       s3pull Client.iter_csv (parse in this thread)
    parse_csv.py iter-csv-async URL --endpoint E s3pull AsyncClient.iter_csv (parse thread)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import sys

SIZE_COLUMN = 2


def _local(path: str) -> tuple[int, int]:
    rows = total = 0
    with gzip.open(path, "rt", newline="") as text:
        for row in csv.reader(text):
            rows += 1
            total += int(row[SIZE_COLUMN])
    return rows, total


def _iter_csv(url: str, endpoint: str) -> tuple[int, int]:
    import s3pull

    rows = total = 0
    with s3pull.Client(endpoint_url=endpoint, subscribers=[]) as client:
        for row in client.iter_csv(url):
            rows += 1
            total += int(row[SIZE_COLUMN])
    return rows, total


async def _iter_csv_async(url: str, endpoint: str) -> tuple[int, int]:
    import s3pull

    rows = total = 0
    async with s3pull.AsyncClient(endpoint_url=endpoint, subscribers=[]) as client:
        async for row in client.iter_csv(url):
            rows += 1
            total += int(row[SIZE_COLUMN])
    return rows, total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["local", "iter-csv", "iter-csv-async"])
    parser.add_argument("target", help="a local path (local) or an s3:// URL")
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    if args.mode == "local":
        rows, total = _local(args.target)
    elif args.mode == "iter-csv":
        rows, total = _iter_csv(args.target, args.endpoint)
    else:
        rows, total = asyncio.run(_iter_csv_async(args.target, args.endpoint))
    print(f"rows {rows} size {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
