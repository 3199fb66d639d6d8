"""The parser process: ``python -m s3pull.documents._worker``.

It reads one JSON request on stdin (``{"op": "info" | "split" | "text",
"path": ..., ...}``), does it with :mod:`._pdfium`, and answers with JSON
lines on stdout: progress (``{"pages": n}``, ``{"done": n}``), the plan of a
split, each page's text (``{"text": [page, text]}``),
then either ``{"result": ...}`` or ``{"error": ...}``, the s3pull exception
pickled (base64): the parent raises the same typed error. A write to a full
pipe blocks this process: the parent's reading is the back-pressure.
"""

from __future__ import annotations

import base64
import json
import pickle
import sys
from pathlib import Path
from typing import Any

from .._errors import DocumentError, S3PullError


def _emit(message: dict[str, Any]) -> None:
    out = sys.stdout.buffer
    out.write(json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
    out.flush()


def _run(request: dict[str, Any]) -> Any:
    from . import _pdfium

    path = Path(request["path"])
    password = request.get("password")
    op = request["op"]
    if op == "info":
        return _pdfium.describe(path, password)
    if op == "split":
        return _pdfium.split(
            path,
            password,
            Path(request["destination"]),
            Path(request["staging"]),
            stem=request["stem"],
            pages_per_part=request.get("pages_per_part"),
            ranges=request.get("ranges"),
            emit=_emit,
        )
    if op == "text":
        return _pdfium.text(path, password, request.get("pages"), _emit)
    raise DocumentError(f"unknown document operation {op!r}")


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    try:
        result = _run(request)
    except S3PullError as exc:
        error: S3PullError = exc
    except Exception as exc:  # anything else PDFium or Python raised: one typed error
        error = DocumentError(f"the PDF parser failed: {type(exc).__name__}: {exc}")
    else:
        _emit({"result": result})
        return 0
    _emit({"error": base64.b64encode(pickle.dumps(error)).decode("ascii")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
