"""Benchmark suite: s3pull side by side with boto3, the AWS CRT, obstore, aiobotocore and s5cmd.

Run it with ``make bench`` or ``python -m bench.run --help`` (see bench/README.md).
"""
