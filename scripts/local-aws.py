#!/usr/bin/env python3
"""Creates the production event wiring on the local AWS emulator (moto):

    bucket --(ObjectCreated:*, ObjectRemoved:*)--> SQS queue --(3 failed receives)--> DLQ

so that a plain upload to the local bucket produces the same SQS message as on AWS, which
`clipsearch relay` then hands to the ingest function. As in template.yaml, only keys ending in
an image suffix (IMAGE_SUFFIXES, both cases) are notified. Idempotent: running it again changes
nothing. Prints the queue URLs as JSON on stdout.

    .venv/bin/python scripts/local-aws.py --bucket images [--queue images-ingest]
    .venv/bin/python scripts/local-aws.py --check-template template.yaml
        exits 1 unless the template's notification rules are the same as these

Endpoint: --endpoint, else CLIPSEARCH_S3_ENDPOINT, else http://127.0.0.1:$MOTO_PORT (5000).
Credentials: the standard AWS variables; `test`/`test` when unset (moto accepts anything).
"""

import argparse
import json
import os
import sys

import boto3


# S3 filter rules are case-sensitive and take one suffix each: one rule per event kind and suffix.
IMAGE_SUFFIXES = [".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"]
IMAGE_SUFFIXES += [s.upper() for s in IMAGE_SUFFIXES]
EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]


def notification_rules():
    """(event, suffix) pairs the bucket notifies the queue of."""
    return {(event, suffix) for event in EVENTS for suffix in IMAGE_SUFFIXES}


def check_template(path: str) -> int:
    from cfnlint.decode import decode

    template, errors = decode(path)
    if errors:
        print(f"{path}: {errors}", file=sys.stderr)
        return 1
    bucket = template["Resources"]["ImagesBucket"]["Properties"]
    found = set()
    for config in bucket["NotificationConfiguration"]["QueueConfigurations"]:
        rules = {r["Name"]: r["Value"] for r in config["Filter"]["S3Key"]["Rules"]}
        found.add((config["Event"], rules.get("suffix")))
    if found != notification_rules():
        print(
            f"{path}: bucket notification rules differ from scripts/local-aws.py:\n"
            f"  only in the template: {sorted(found - notification_rules(), key=str)}\n"
            f"  only here: {sorted(notification_rules() - found, key=str)}",
            file=sys.stderr,
        )
        return 1
    print(f"{path}: bucket notification rules match the local wiring ({len(found)} rules)")
    return 0


def main() -> int:
    port = os.environ.get("MOTO_PORT", "5000")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", default=os.environ.get("CLIPSEARCH_BUCKET", "images"))
    parser.add_argument("--queue", help="queue name (default: <bucket>-ingest)")
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("CLIPSEARCH_S3_ENDPOINT") or f"http://127.0.0.1:{port}",
    )
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=int(os.environ.get("CLIPSEARCH_QUEUE_VISIBILITY_SECS", "30")),
        help="seconds a received message stays hidden (on AWS: >= 6x the function timeout)",
    )
    parser.add_argument("--max-receive-count", type=int, default=3)
    parser.add_argument(
        "--check-template", metavar="TEMPLATE", help="compare the notification rules with a SAM template and exit"
    )
    args = parser.parse_args()
    if args.check_template:
        return check_template(args.check_template)
    queue = args.queue or f"{args.bucket}-ingest"

    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        region_name=args.region,
    )
    s3 = session.client("s3", endpoint_url=args.endpoint)
    sqs = session.client("sqs", endpoint_url=args.endpoint)

    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if args.bucket not in existing:
        if args.region == "us-east-1":
            s3.create_bucket(Bucket=args.bucket)
        else:
            s3.create_bucket(
                Bucket=args.bucket,
                CreateBucketConfiguration={"LocationConstraint": args.region},
            )

    dlq_url = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=queue,
        Attributes={
            "VisibilityTimeout": str(args.visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(args.max_receive_count)}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]

    s3.put_bucket_notification_configuration(
        Bucket=args.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": f"clipsearch-ingest-{event.split(':')[1]}-{suffix}",
                    "QueueArn": queue_arn,
                    "Events": [event],
                    "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}},
                }
                for event, suffix in sorted(notification_rules())
            ]
        },
    )
    json.dump(
        {
            "bucket": args.bucket,
            "queue_url": queue_url,
            "queue_arn": queue_arn,
            "dlq_url": dlq_url,
            "endpoint": args.endpoint,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
