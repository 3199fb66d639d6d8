"""PDFs written by hand, object by object, for tests and benchmarks.

:func:`write_pdf` streams a valid PDF of ``pages`` pages to a file: page
``n`` shows the text ``page_text(n)`` (Helvetica, so any reader extracts it
back) and, with ``padding`` bytes per page, carries an image of that many random
bytes (Flate-encoded, as a scan's would be). Nothing is held in memory
but one page's image, so a 584 MB, 2,300-page file takes a few MB and a few
seconds to make. No PDF library is needed.
"""

from __future__ import annotations

import os
import zlib
from random import Random

#: Each page's image is this wide (pixels, 8-bit gray); its height follows from the size.
IMAGE_WIDTH = 1024


def page_text(number: int) -> str:
    """The text page ``number`` (from 1) of :func:`write_pdf` shows."""
    return f"Page {number} of the s3pull test document"


def write_pdf(path: str | os.PathLike[str], pages: int, *, padding: int = 0, seed: int = 0) -> int:
    """Write a PDF of ``pages`` pages to ``path``; return its size in bytes.

    Args:
        pages: how many pages (0 makes a valid document with none).
        padding: bytes of incompressible image data per page (rounded up to
            whole rows of :data:`IMAGE_WIDTH`).
        seed: varies the image bytes (the same seed, the same file).

    Example:
        >>> write_pdf("/tmp/doc.pdf", 3) > 0  # doctest: +SKIP
        True
    """
    rows = -(-padding // IMAGE_WIDTH) if padding else 0
    offsets: list[int] = []
    # Objects: 1 catalog, 2 page tree, 3 font, then per page: page, content, image.
    per_page = 3 if rows else 2
    with open(path, "wb") as out:

        def begin(number: int) -> None:
            assert number == len(offsets) + 1
            offsets.append(out.tell())
            out.write(f"{number} 0 obj\n".encode())

        out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        kids = " ".join(f"{4 + per_page * i} 0 R" for i in range(pages))
        begin(1)
        out.write(b"<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
        begin(2)
        out.write(f"<< /Type /Pages /Count {pages} /Kids [{kids}] >>\nendobj\n".encode())
        begin(3)
        out.write(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n")
        # A fresh random block per page, as scans are: no store, cache or
        # compressor can shortcut it.
        random = Random(seed)
        for index in range(pages):
            page, content = 4 + per_page * index, 5 + per_page * index
            xobject = f" /XObject << /Im0 {content + 1} 0 R >>" if rows else ""
            begin(page)
            out.write(
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
                f"/Resources << /Font << /F1 3 0 R >>{xobject} >> >>\nendobj\n".encode()
            )
            text = (
                page_text(index + 1).replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            )
            draw = "q 612 0 0 792 0 0 cm /Im0 Do Q\n" if rows else ""
            stream = f"{draw}BT /F1 12 Tf 72 720 Td ({text}) Tj ET\n".encode()
            begin(content)
            out.write(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream)
            out.write(b"\nendstream\nendobj\n")
            if rows:
                # Stored (level 0) deflate blocks: a valid FlateDecode stream,
                # made at memcpy speed, and as incompressible as a real scan's.
                image = zlib.compress(random.randbytes(rows * IMAGE_WIDTH), 0)
                begin(content + 1)
                out.write(
                    f"<< /Type /XObject /Subtype /Image /Width {IMAGE_WIDTH} /Height {rows} "
                    f"/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode "
                    f"/Length {len(image)} >>\nstream\n".encode()
                )
                out.write(image)
                out.write(b"\nendstream\nendobj\n")
        xref = out.tell()
        out.write(f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode())
        out.write(b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets))
        out.write(
            f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n".encode()
        )
        return out.tell()
