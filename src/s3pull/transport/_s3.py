"""S3 addressing and SigV4 signing, with botocore's credential chain.

botocore is used for one thing only: resolving credentials and region the
way boto3 users configured them (environment, profiles, SSO, IMDS,
assume-role...). When the environment already holds both (access key,
secret and ``AWS_DEFAULT_REGION``, no profile named), they are read directly
and botocore is never imported: its import is ~0.4 s of start-up. Signing is
``_sigv4``; the requests go through the transport's HTTP clients (``_transport``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .._errors import ConfigError, CredentialsError
from ._sigv4 import Credentials, sign

ADDRESSING_STYLES = ("auto", "path", "virtual")


class S3Endpoint:
    """Where a bucket's requests go and how they are signed.

    Args:
        endpoint_url: a custom S3 API endpoint; default ``AWS_ENDPOINT_URL_S3``,
            then ``AWS_ENDPOINT_URL``, then AWS itself.
        region: default from the profile / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``,
            else ``us-east-1``.
        addressing_style: ``path`` (``host/bucket/key``, the default for custom
            endpoints), ``virtual`` (``bucket.host/key``, the default for AWS) or
            ``auto``.
        profile: the AWS profile name (default ``AWS_PROFILE``).
        sign: False sends anonymous requests (public buckets).
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        region: str | None = None,
        addressing_style: str = "auto",
        profile: str | None = None,
        sign: bool = True,
    ) -> None:
        if addressing_style not in ADDRESSING_STYLES:
            raise ConfigError(
                f"addressing_style must be one of {', '.join(ADDRESSING_STYLES)}, "
                f"got {addressing_style!r}"
            )
        endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        if endpoint_url is not None:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"endpoint URL must be http(s)://host[:port], got {endpoint_url!r}"
                )
            endpoint_url = endpoint_url.rstrip("/")
        self.endpoint_url = endpoint_url
        self.addressing_style = addressing_style
        self.profile = profile
        self.sign = sign
        self._region = region
        self._bucket_regions: dict[str, str] = {}
        self._credentials: Any = None
        self._resolved = False
        self._lock = asyncio.Lock()

    @property
    def region(self) -> str:
        return self._region or "us-east-1"

    async def resolve(self) -> None:
        """Load credentials and region once; botocore may block (IMDS, SSO), so off-loop."""
        if self._resolved:
            return
        async with self._lock:
            if not self._resolved:
                await asyncio.get_running_loop().run_in_executor(None, self._load)
                self._resolved = True

    async def refresh_credentials(self) -> None:
        """Resolve the credential chain again, after the store said the token expired."""
        async with self._lock:
            await asyncio.get_running_loop().run_in_executor(None, self._load)

    def _load(self) -> None:
        if self._load_from_environment():
            return
        import botocore.exceptions
        import botocore.session

        try:
            session = botocore.session.Session(profile=self.profile)
            if self._region is None:
                self._region = _env_region() or session.get_config_variable("region")
            self._credentials = session.get_credentials() if self.sign else None
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(str(exc)) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise CredentialsError(f"cannot load AWS credentials: {exc}") from None

    def _load_from_environment(self) -> bool:
        """Take region and credentials from the environment, as botocore's chain
        would (its environment provider comes first); False when anything
        needs the chain itself: a profile, expiring credentials, a region that
        only a config file could give."""
        env = os.environ
        region = self._region or _env_region()
        if not region or self.profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE"):
            return False
        if not self.sign:
            self._region, self._credentials = region, None
            return True
        access_key, secret_key = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key or env.get("AWS_CREDENTIAL_EXPIRATION"):
            return False
        token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None
        self._region = region
        self._credentials = Credentials(access_key, secret_key, token)
        return True

    @property
    def anonymous(self) -> bool:
        return self._credentials is None

    def set_bucket_region(self, bucket: str, region: str) -> bool:
        """Remember a bucket's real region (from ``x-amz-bucket-region``); True if new."""
        if self._bucket_regions.get(bucket) == region:
            return False
        self._bucket_regions[bucket] = region
        return True

    def url(self, bucket: str, key: str, query: dict[str, str] | None = None) -> str:
        """The request URL of an object (``key`` may be empty for bucket requests)."""
        region = self._bucket_regions.get(bucket, self.region)
        # Keys are sent verbatim, dots and slashes included: "../x" is a key
        # like any other for S3, and the URL is built with yarl's encoded=True.
        path = quote(key, safe="/~")
        if self.endpoint_url is None:
            virtual = self.addressing_style != "path" and "." not in bucket
            host = f"s3.{region}.amazonaws.com"
            base = f"https://{bucket}.{host}" if virtual else f"https://{host}/{bucket}"
        else:
            virtual = self.addressing_style == "virtual"
            parts = urlsplit(self.endpoint_url)
            if virtual:
                base = f"{parts.scheme}://{bucket}.{parts.netloc}{parts.path}"
            else:
                base = f"{self.endpoint_url}/{bucket}"
        url = f"{base}/{path}"
        if query:
            url += "?" + urlencode(sorted(query.items()), quote_via=quote, safe="")
        return url

    def signed_headers(
        self, method: str, url: str, headers: dict[str, str], bucket: str
    ) -> dict[str, str]:
        """``headers`` plus the SigV4 ``Authorization`` for this request."""
        credentials = self._credentials
        if credentials is None:
            return headers
        if not isinstance(credentials, Credentials):  # botocore's, maybe refreshing
            frozen = credentials.get_frozen_credentials()
            credentials = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        region = self._bucket_regions.get(bucket, self.region)
        return sign(method, url, headers, credentials, region)


def _env_region() -> str | None:
    """``AWS_REGION``, else ``AWS_DEFAULT_REGION``, as the AWS CLI v2 and the
    other SDKs read them (botocore alone reads only the second)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
