"""The document tasks: ``s3pull.pdf_split`` and ``s3pull.pdf_text``.

Each takes one PDF (an ``s3://`` / ``http(s)://`` URL, or a path the worker
sees), downloads it within the child's memory budget into a temp file,
parses it in a parser process of its own (``s3pull.documents``) and writes
the results under ``destination``: the task's summary lists each part (or
the text file) as a result. Pass the PDF's ``size`` when it is known: the
router (:func:`s3pull.celery.route_by_size`) then sends large documents to
``s3pull.large``, whose workers have the memory for them. A bad document is
the task's exception (a pickled ``DocumentError``), with nothing written.
A ``password`` argument travels in the task message, through the broker:
leave it out and set ``S3PULL_PDF_PASSWORD`` in the worker's environment.

A child's memory during such a task: its budget (``child_budget``) for the
download, then the parser process (~40 MB + one part's objects), which runs
after the download and ends before the task does.
"""

from __future__ import annotations

from typing import Any


def register_documents(app: Any, client: Any) -> list[Any]:
    """Add the document tasks to ``app``; ``client(config, endpoint)`` is the
    child's client for a task's settings. Returns the tasks."""

    @app.task(name="s3pull.pdf_split", bind=True)  # type: ignore[untyped-decorator]
    def pdf_split(
        self: Any,
        source: str,
        destination: str,
        pages_per_part: int | None = None,
        ranges: str | None = None,
        password: str | None = None,
        size: int | None = None,
        config: dict[str, Any] | None = None,
        endpoint: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        from .. import documents

        parts = documents.split_pdf(
            source,
            destination,
            pages_per_part=pages_per_part,
            ranges=ranges,
            password=password,
            client=client(config, endpoint),
        )
        pages = sum(part.pages for part in parts)
        return {"source": source, "parts": [part.to_json() for part in parts], "pages": pages}

    @app.task(name="s3pull.pdf_text", bind=True)  # type: ignore[untyped-decorator]
    def pdf_text(
        self: Any,
        source: str,
        destination: str,
        pages: str | None = None,
        password: str | None = None,
        size: int | None = None,
        config: dict[str, Any] | None = None,
        endpoint: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        from .. import documents

        count = documents.extract_text_to(
            source, destination, pages=pages, password=password, client=client(config, endpoint)
        )
        return {"source": source, "path": destination, "pages": count}

    return [pdf_split, pdf_text]
