"""The seeds' approach to a large PDF: boto3 downloads it, then PyMuPDF or
pypdf splits it into parts or extracts its text.

``--lib pymupdf``: ``download_file`` to disk, then ``fitz.open(path)``;
``--lib pymupdf-bytes``: ``get_object()["Body"].read()``, then
``fitz.open(stream=bytes)`` (what ran out of memory in the seeds);
``--lib pypdf``: ``download_file``, then ``PdfReader`` over a file handle.
Prints ``pages N`` (pages written or read) for the harness to check."""

from __future__ import annotations

import os
import sys

import boto3
from botocore.config import Config
from common import parse_args


def _extra(parser) -> None:
    parser.add_argument("--lib", choices=["pymupdf", "pymupdf-bytes", "pypdf"], required=True)
    parser.add_argument("--action", choices=["split", "text"], required=True)
    parser.add_argument("--pages-per-part", type=int, default=50)


def _pymupdf(args, source) -> int:
    import fitz

    document = fitz.open(**source)
    count = document.page_count
    if args.action == "text":
        with open(os.path.join(args.dest, "scan.txt"), "w", encoding="utf-8") as out:
            for page in document:
                out.write(page.get_text() + "\f")
        return count
    for first in range(0, count, args.pages_per_part):
        last = min(first + args.pages_per_part, count) - 1
        part = fitz.open()
        part.insert_pdf(document, from_page=first, to_page=last)
        part.save(os.path.join(args.dest, f"scan.p{first + 1:04d}-{last + 1:04d}.pdf"))
        part.close()
    return count


def _pypdf(args, path: str) -> int:
    from pypdf import PdfReader, PdfWriter

    with open(path, "rb") as handle:  # a handle: given a path, pypdf reads it all into memory
        reader = PdfReader(handle)
        count = len(reader.pages)
        if args.action == "text":
            with open(os.path.join(args.dest, "scan.txt"), "w", encoding="utf-8") as out:
                for page in reader.pages:
                    out.write(page.extract_text() + "\f")
            return count
        for first in range(0, count, args.pages_per_part):
            last = min(first + args.pages_per_part, count) - 1
            writer = PdfWriter()
            for index in range(first, last + 1):
                writer.add_page(reader.pages[index])
            with open(
                os.path.join(args.dest, f"scan.p{first + 1:04d}-{last + 1:04d}.pdf"), "wb"
            ) as f:
                writer.write(f)
    return count


def main() -> None:
    args = parse_args(__doc__, _extra)
    s3 = boto3.client(
        "s3", endpoint_url=args.endpoint, config=Config(s3={"addressing_style": "path"})
    )
    os.makedirs(args.dest, exist_ok=True)
    if args.lib == "pymupdf-bytes":
        body = s3.get_object(Bucket=args.bucket, Key=args.key)["Body"].read()
        count = _pymupdf(args, {"stream": body, "filetype": "pdf"})
    else:
        path = os.path.join(args.dest, "download.pdf")
        s3.download_file(args.bucket, args.key, path)
        try:
            count = (
                _pymupdf(args, {"filename": path}) if args.lib == "pymupdf" else _pypdf(args, path)
            )
        finally:
            os.unlink(path)
    print(f"pages {count}", file=sys.stderr)


if __name__ == "__main__":
    main()
