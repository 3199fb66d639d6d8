"""Starting a child interpreter that runs one of s3pull's own modules.

The pool's workers and the documents' parser processes are both started so:
a fresh interpreter that imports this very s3pull (not another install, not
a file of the current directory), spoken to over its stdin and stdout.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .._errors import S3PullError

#: The directory this s3pull package is imported from.
_HERE = str(Path(__file__).resolve().parents[2])


async def spawn_module(
    module: str, *, what: str, limit: int, new_session: bool = False
) -> asyncio.subprocess.Process:
    """Start ``python -P -m module`` with pipes for stdin, stdout and stderr.

    ``what`` names the child in the one-line error when it cannot start (no
    memory, no process slot, no file descriptors left); ``limit`` is the
    longest line read from its stdout; ``new_session`` keeps a terminal's
    Ctrl-C from reaching it (its parent then stops it).
    """
    env = dict(os.environ)
    if _HERE not in sys.path:
        # Imported from a path the interpreter would not look in by itself
        # (a script's sys.path.insert). Only then: PYTHONPATH goes before the
        # standard library, so adding site-packages there could shadow it.
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _HERE + (os.pathsep + path if path else "")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # not the current directory first on sys.path: its files are not ours
            "-m",
            module,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=limit,
            start_new_session=new_session,
        )
    except OSError as exc:
        raise S3PullError(f"cannot start {what}: {exc.strerror or exc}") from None
