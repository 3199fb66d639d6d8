"""Argument parsing shared by the peer scripts (stdlib only: it is imported
by scripts running in the peer venvs, next to this file on ``sys.path``)."""

from __future__ import annotations

import argparse
import os


def parse_args(description: str, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--bucket", required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--key", help="download one object to --dest")
    mode.add_argument("--prefix", help="download every object under the prefix into --dest")
    parser.add_argument("--dest", required=True, help="file (--key) or directory (--prefix)")
    parser.add_argument("--concurrency", type=int, default=0, help="0: the client's default")
    if extra:
        extra(parser)
    return parser.parse_args()


def local_path(dest_dir: str, prefix: str, key: str) -> str:
    """Where a key under ``prefix`` lands: its path relative to the prefix."""
    path = os.path.join(dest_dir, key[len(prefix) :])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path
