"""The parser process: started per document, spoken to in JSON lines, killed
when its caller goes away.

Why a process, not a thread: PDFium (like MuPDF) is not thread-safe, and a
parse is CPU work that would stop the event loop's sockets for as long as it
runs. One process per document keeps both true by construction: nothing else
ever runs inside that PDFium, and the loop only reads a pipe. It costs a
Python start-up (~0.1 s) per document, nothing beside a 584 MB parse.

The child runs in a session of its own, so a Ctrl-C at the terminal reaches
only the parent, whose cancellation then kills the child (``SIGKILL``) and
waits for it: by the time the caller sees the cancellation or the error,
no parser runs any more. Whatever the child was writing is then removed by
the caller (see ``_api``), which knows the names it was writing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
import signal
from collections.abc import AsyncGenerator
from typing import Any

from .._errors import DocumentError, S3PullError
from ..executors import spawn_module

#: The longest line the child may send: one page's text, JSON-encoded.
MAX_MESSAGE = 256 << 20
#: The end of the child's stderr kept for the message when it dies.
STDERR_TAIL = 2000


async def parser_messages(request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """The messages the parser process sends for ``request``, as they come;
    its ``{"error": ...}`` is raised here as the s3pull exception it was."""
    process = await spawn_module(
        "s3pull.documents._worker",
        what="the PDF parser process",
        limit=MAX_MESSAGE,
        new_session=True,
    )
    assert process.stdin and process.stdout and process.stderr
    stderr = asyncio.ensure_future(_tail(process.stderr))
    try:
        process.stdin.write(json.dumps(request).encode())
        await process.stdin.drain()
        process.stdin.close()
        while line := await process.stdout.readline():
            message = json.loads(line)
            if "error" in message:
                error = pickle.loads(base64.b64decode(message["error"]))
                assert isinstance(error, S3PullError)
                raise error
            yield message
            if "result" in message:
                break
        else:
            code = await process.wait()
            raise DocumentError(f"the PDF parser process {_ended(code)}{await _said(stderr)}")
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        stderr.cancel()


def _ended(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{why}"
    return f"exited with status {code} before answering"


async def _said(stderr: asyncio.Future[bytes]) -> str:
    try:
        text = (await asyncio.wait_for(stderr, 5)).decode("utf-8", "replace").strip()
    except TimeoutError:
        return ""
    last = text.splitlines()[-1] if text else ""
    return f": {last}" if last else ""


async def _tail(stream: asyncio.StreamReader) -> bytes:
    """The end of the child's stderr (read all along, so it never fills its pipe)."""
    kept = b""
    while chunk := await stream.read(1 << 16):
        kept = (kept + chunk)[-STDERR_TAIL:]
    return kept
