"""Upload files to an S3-compatible store through its API (so the server records each object's
ETag as a real store does, instead of hashing a copied file on every request).

    python benches/s3_upload.py s3://BUCKET/PREFIX FILE...    # AWS_* variables as for syllabus
"""
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig


def main():
    dest, files = sys.argv[1], sys.argv[2:]
    bucket, _, prefix = dest.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        pass
    config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)
    for f in files:
        key = f"{prefix.rstrip('/')}/{os.path.basename(f)}".lstrip("/")
        s3.upload_file(f, bucket, key, Config=config)


if __name__ == "__main__":
    main()
