"""Documents: PDFs split and read within a worker's memory, and small objects read whole.

A consumer of a disk-backed download (see DESIGN.md): a URL is downloaded by
the client into a private temp file within its memory budget, and the PDF is
read from that file by a parser process of its own (pypdfium2, i.e. PDFium:
Apache-2.0/BSD), never from bytes in memory and never on the event loop's
thread. Every file written (split parts, text) goes through the sinks: temp
file, fsync, rename. Needs ``s3pull[pdf]``.

- :func:`info` — pages, size, encryption, metadata.
- :func:`split_pdf` — parts ``<stem>.p0001-0050.pdf``... by ``pages_per_part``
  or ``ranges="1-100,101-250"``, all or none of them.
- :func:`extract_text` — ``(page, text)`` pairs; :func:`extract_text_to` — a text file.
- :func:`read_text` / :func:`read_json` — a small object, its size checked
  before it is read.

Each has an ``_async`` twin taking an :class:`s3pull.AsyncClient`.

Memory
------
The whole process tree peaks at::

    parent:  interpreter + s3pull (~45 MB) + the client's memory_limit (64 MiB default)
  + parser:  interpreter + PDFium (~40 MB) + the objects of one part being copied
             (or of one page, for text), whatever the document's size

The download ends before the parser starts, so on a host where memory is the
limit the two peaks do not overlap in time either. The downloaded file itself
is in the page cache, which the kernel reclaims (also in a memory cgroup).

May import: the clients (``_client``, ``_sync``), the sinks and the shared
modules; imported by the CLI and ``s3pull.celery`` only.
"""

from ._api import (
    DEFAULT_MAX_BYTES,
    PAGE_BREAK,
    DocumentInfo,
    PdfPart,
    extract_text,
    extract_text_async,
    extract_text_to,
    extract_text_to_async,
    info,
    info_async,
    local_copy,
    read_json,
    read_json_async,
    read_text,
    read_text_async,
    split_pdf,
    split_pdf_async,
)
from ._plan import DEFAULT_PAGES_PER_PART, PartPlan, parse_ranges, part_name, plan_split

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_PAGES_PER_PART",
    "PAGE_BREAK",
    "DocumentInfo",
    "PartPlan",
    "PdfPart",
    "extract_text",
    "extract_text_async",
    "extract_text_to",
    "extract_text_to_async",
    "info",
    "info_async",
    "local_copy",
    "parse_ranges",
    "part_name",
    "plan_split",
    "read_json",
    "read_json_async",
    "read_text",
    "read_text_async",
    "split_pdf",
    "split_pdf_async",
]
