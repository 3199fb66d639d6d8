"""Proxies from the environment, as boto3 users set them.

``HTTP_PROXY`` / ``HTTPS_PROXY`` (either case) name an ``http://`` proxy,
its credentials in the URL; ``NO_PROXY`` lists hosts that go direct. The
standard library parses them (``urllib.request``), as requests
does. An ``https://`` proxy URL is ignored with a warning, as aiohttp does.
"""

from __future__ import annotations

import base64
import logging
import os
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

logger = logging.getLogger("s3pull")


class Proxy(NamedTuple):
    """An ``http://`` proxy and its credentials."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` header value, if there are credentials."""
        if self.username is None:
            return None
        token = f"{self.username}:{self.password or ''}".encode()
        return f"Basic {base64.b64encode(token).decode()}"


def env_proxy(scheme: str, host: str) -> Proxy | None:
    """The proxy the environment names for ``scheme://host``, or None for direct."""
    if not any(name[-6:].lower() == "_proxy" for name in os.environ):
        return None  # what getproxies_environment would find: nothing
    import urllib.request  # ~8 ms of imports, on the way to the first request

    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not url or bypass(host, proxies):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        logger.warning("ignoring the %s proxy %s: only http:// proxies are supported", scheme, url)
        return None
    return Proxy(
        parts.hostname,
        parts.port or 80,
        unquote(parts.username) if parts.username is not None else None,
        unquote(parts.password) if parts.password is not None else None,
    )
