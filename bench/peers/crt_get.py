"""The AWS CRT transfer manager (``s3transfer.crt.CRTTransferManager``) with its
defaults (8 MiB parts, throughput target chosen by the CRT).

boto3's own ``preferred_transfer_client="crt"`` path cannot be used here: it
builds the CRT client without the custom endpoint (it would address AWS), so
this script assembles the same pieces the AWS CLI does, with the endpoint.
For a prefix every key is submitted at once and the CRT schedules them."""

from __future__ import annotations

import sys

import botocore.session
from botocore.config import Config
from common import local_path, parse_args
from s3transfer.crt import (
    BotocoreCRTCredentialsWrapper,
    BotocoreCRTRequestSerializer,
    CRTTransferManager,
    create_s3_crt_client,
)


def main() -> None:
    args = parse_args(__doc__)
    session = botocore.session.get_session()
    region = session.get_config_variable("region") or "us-east-1"
    client_kwargs = {
        "region_name": region,
        "endpoint_url": args.endpoint,
        "config": Config(s3={"addressing_style": "path"}),
    }
    creds = BotocoreCRTCredentialsWrapper(session.get_credentials())
    crt_client = create_s3_crt_client(
        region,
        crt_credentials_provider=creds.to_crt_credentials_provider(),
        use_ssl=args.endpoint.startswith("https:"),
    )
    # The serializer adds its own keys to the dict it is given: pass a copy.
    serializer = BotocoreCRTRequestSerializer(session, dict(client_kwargs))
    with CRTTransferManager(crt_client, serializer) as manager:
        if not isinstance(manager, CRTTransferManager):  # pragma: no cover - sanity
            sys.exit("not the CRT transfer manager")
        if args.key:
            manager.download(args.bucket, args.key, args.dest).result()
            return
        s3 = session.create_client("s3", **client_kwargs)
        keys = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=args.bucket, Prefix=args.prefix
            )
            for obj in page.get("Contents", [])
        ]
        futures = [
            manager.download(args.bucket, k, local_path(args.dest, args.prefix, k)) for k in keys
        ]
        for f in futures:
            f.result()


if __name__ == "__main__":
    main()
