#!/usr/bin/env python3
"""Checks each function's IAM role in template.yaml against the AWS calls the code makes.

1. Finds every AWS SDK operation call in the deployed code (shared/src, functions/*/src): a
   `.op_name()` whose name is an operation of aws-sdk-s3, -sqs or -secretsmanager (the SDK
   crates' own operation lists, from `cargo metadata`), and every POST-policy signature.
2. Each call site (file, enclosing fn, operation) must be declared below in CALL_SITES with the
   permission each role needs for it, or as not needing one. An undeclared call fails: add it
   here *and* its permission to template.yaml.
3. Each role must grant exactly the declared permissions: each with its scoped resource (and
   prefix condition), nothing more, no wildcards.

Usage: check_permissions.py [--template template.yaml] [--root .] [--manifest Cargo.toml]; exit 1 with
the reasons. Run by tests/permissions.rs (which also shows it fail on mutated copies).
"""
import argparse
import json
import os
import re
import subprocess
import sys

from cfnlint.decode import decode

IMAGES = "arn:${AWS::Partition}:s3:::${AWS::StackName}-images-${AWS::AccountId}-${AWS::Region}"
GRANTS = {
    # name: (action, resource, s3:prefix condition or None)
    "images.read": ("s3:GetObject", IMAGES + "/${ImagePrefix}*", None),
    "images.list": ("s3:ListBucket", IMAGES, "${ImagePrefix}*"),
    "uploads.write": ("s3:PutObject", IMAGES + "/${ImagePrefix}${UploadPrefix}*", None),
    # Ingest status records (shared/src/objects/status_store.rs; CLIPSEARCH_STATUS_PREFIX).
    "status.write": ("s3:PutObject", IMAGES + "/.clipsearch/status/*", None),
    "status.delete": ("s3:DeleteObject", IMAGES + "/.clipsearch/status/*", None),
    "status.read": ("s3:GetObject", IMAGES + "/.clipsearch/status/*", None),
    "status.list": ("s3:ListBucket", IMAGES, ".clipsearch/status/*"),
    # Thumbnails (shared/src/objects/thumbnail_store.rs; CLIPSEARCH_THUMBNAIL_PREFIX).
    "thumbnails.write": ("s3:PutObject", IMAGES + "/.clipsearch/thumbnails/*", None),
    "thumbnails.delete": ("s3:DeleteObject", IMAGES + "/.clipsearch/thumbnails/*", None),
    "thumbnails.read": ("s3:GetObject", IMAGES + "/.clipsearch/thumbnails/*", None),
    "model.read": ("s3:GetObject", "arn:${AWS::Partition}:s3:::${ModelBucket}/${ModelPrefix}*", None),
    "model.list": ("s3:ListBucket", "arn:${AWS::Partition}:s3:::${ModelBucket}", "${ModelPrefix}*"),
    "text-model.read": ("s3:GetObject", "arn:${AWS::Partition}:s3:::${ModelBucket}/${TextModelPrefix}*", None),
    "text-model.list": ("s3:ListBucket", "arn:${AWS::Partition}:s3:::${ModelBucket}", "${TextModelPrefix}*"),
    "token.read": (
        "secretsmanager:GetSecretValue",
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${MilvusTokenSecretName}-??????",
        None,
    ),
    "search-token.read": (
        "secretsmanager:GetSecretValue",
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${MilvusSearchTokenSecretName}-??????",
        None,
    ),
}
ROLES = {"IngestFunction": "ingest", "SearchFunction": "search"}

# (file, enclosing fn, operation) -> {role: [grants]}; {} = reached by no deployed role.
CALL_SITES = {
    # S3Objects::list_page: the model download (both; search also lists its text tower), and
    # the missing-or-forbidden check of ObjectSource::head after a 403 (ingest).
    ("shared/src/objects/s3.rs", "list_page", "list_objects_v2"): {
        "ingest": ["images.list", "model.list"],
        "search": ["model.list", "text-model.list"],
    },
    # S3Objects::get: image bytes (ingest: the event's object; search: `image_url` queries),
    # model files (both; search also its text tower's) and status records (search's
    # `GET /status`; the listing grant makes a key without a record a 404, not a 403).
    ("shared/src/objects/s3.rs", "get", "get_object"): {
        "ingest": ["images.read", "model.read"],
        "search": ["images.read", "model.read", "text-model.read", "status.read", "status.list"],
    },
    ("shared/src/objects/s3.rs", "head_unbounded", "head_object"): {"ingest": ["images.read"]},
    # Presigned GETs of results and their thumbnails: the browser reads with the role's
    # signature.
    ("shared/src/objects/s3.rs", "presign_get", "get_object"): {"search": ["images.read", "thumbnails.read"]},
    # A presigned GET only to learn the bucket's URL; it is never sent.
    ("shared/src/objects/s3.rs", "presign_post", "get_object"): {},
    # The upload form's policy is signed by the role: S3 checks s3:PutObject on the key.
    ("shared/src/objects/s3.rs", "presign_post", "post_policy::sign"): {"search": ["uploads.write"]},
    # Ingest writes and clears status records and thumbnails (nothing else); the demo and the
    # tests also upload and delete images with them.
    ("shared/src/objects/s3.rs", "put", "put_object"): {"ingest": ["status.write", "thumbnails.write"]},
    ("shared/src/objects/s3.rs", "delete", "delete_object"): {"ingest": ["status.delete", "thumbnails.delete"]},
    ("shared/src/secrets.rs", "milvus_token", "get_secret_value"): {
        "ingest": ["token.read"],
        "search": ["token.read", "search-token.read"],
    },
}
# Granted by SAM's SQS event source (SQSPollerPolicy), not by a statement of ours.
EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}


def sdk_operations(manifest):
    """Operation names (snake_case) of the AWS SDK crates the workspace uses."""
    # Only the host's packages: the whole graph would want Windows-only crates that no build
    # here downloads (a fresh machine has none of them, and --offline then fails).
    host = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    host = next(line.split(": ", 1)[1] for line in host.splitlines() if line.startswith("host: "))
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host,
             "--manifest-path", manifest],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    ops = set()
    for package in meta["packages"]:
        if package["name"] in ("aws-sdk-s3", "aws-sdk-sqs", "aws-sdk-secretsmanager"):
            folder = os.path.join(os.path.dirname(package["manifest_path"]), "src", "operation")
            ops |= {name[:-3] if name.endswith(".rs") else name for name in os.listdir(folder)}
    ops.discard("mod")
    if len(ops) < 100:
        sys.exit(f"found only {len(ops)} SDK operations: is cargo metadata working?")
    return ops


def call_sites(root, ops):
    """(file, enclosing fn, op, line) of each SDK call and POST-policy signature."""
    pattern = re.compile(r"\.(\w+)\(\)|\b(post_policy::sign)\(")
    fn_pattern = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?fn\s+(\w+)")
    dirs = [os.path.join(root, "shared", "src")]
    dirs += [os.path.join(root, "functions", f, "src") for f in sorted(os.listdir(os.path.join(root, "functions")))]
    found = []
    for top in dirs:
        for folder, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, root)
                enclosing = None
                in_tests = False
                for number, line in enumerate(open(path, encoding="utf-8"), 1):
                    if line.startswith("#[cfg(test)]"):
                        in_tests = True  # unit tests below: no deployed path
                    if in_tests:
                        break
                    m = fn_pattern.match(line)
                    if m:
                        enclosing = m.group(1)
                    for call in pattern.finditer(line):
                        op = call.group(1) or call.group(2)
                        if op in ops or op == "post_policy::sign":
                            found.append((rel, enclosing, op, number))
    return found


def flatten(value):
    """Both branches of every Fn::If (a conditional statement counts where it applies)."""
    if isinstance(value, dict) and "Fn::If" in value:
        out = []
        for branch in value["Fn::If"][1:]:
            out.extend(flatten(branch))
        return out
    if isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def text(value):
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def role_grants(template, resource):
    """(action, resource, prefix condition) of every statement of a function's Policies."""
    grants = []
    props = template["Resources"][resource]["Properties"]
    policies = [policy for item in props.get("Policies", []) for policy in flatten(item)]
    for policy in policies:
        if isinstance(policy, str):
            if not policy.endswith("AWSLambdaVPCAccessExecutionRole"):
                grants.append(("managed policy", policy, None))
            continue
        for statement in policy.get("Statement", []):
            for statement in flatten(statement):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                prefix = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
                prefixes = [None] if prefix is None else [
                    text(p) for item in (prefix if isinstance(prefix, list) else [prefix]) for p in flatten(item)]
                for action in actions:
                    for r in resources:
                        for option in flatten(r):
                            for one in prefixes:
                                grants.append((action, text(option), one))
    return grants


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", default="template.yaml")
    ap.add_argument("--root", default=".", help="where shared/src and functions/*/src are")
    ap.add_argument("--manifest", help="the workspace's Cargo.toml (default: ROOT/Cargo.toml)")
    args = ap.parse_args()
    template, matches = decode(args.template)
    if matches:
        sys.exit(f"{args.template}: {matches}")
    template = json.loads(json.dumps(template))

    problems = []
    needed = {role: set() for role in ROLES.values()}
    for rel, fn, op, line in call_sites(args.root, sdk_operations(args.manifest or os.path.join(args.root, "Cargo.toml"))):
        site = (rel, fn, op)
        if site not in CALL_SITES:
            problems.append(
                f"{rel}:{line}: `{op}` in fn {fn} is an AWS call no role is checked for: declare it in "
                f"tests/iam/check_permissions.py CALL_SITES and grant it in template.yaml"
            )
            continue
        for role, grants in CALL_SITES[site].items():
            needed[role] |= set(grants)

    for resource, role in ROLES.items():
        granted = role_grants(template, resource)
        want = {GRANTS[g] for g in needed[role]}
        for grant in sorted(want):
            if grant not in granted:
                action, arn, prefix = grant
                cond = f" with s3:prefix {prefix}" if prefix else ""
                problems.append(f"{resource}: the code calls {action} on {arn}{cond}, the role does not grant it")
        for grant in granted:
            action, arn, prefix = grant
            if "*" in action or arn in ("*", "arn:${AWS::Partition}:s3:::*"):
                problems.append(f"{resource}: wildcard grant {grant}")
            if grant not in want:
                problems.append(f"{resource}: grants {action} on {arn} (prefix {prefix}), which no code path calls")
        events = template["Resources"][resource]["Properties"].get("Events", {})
        if role == "ingest" and not any(e.get("Type") == "SQS" for e in events.values()):
            problems.append(f"{resource}: no SQS event source (its {sorted(EVENT_SOURCE_ACTIONS)} come from it)")
        print(f"{resource}: {len(granted)} grants for {len(want)} needed permissions")

    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("every role grants exactly what its code paths call")


if __name__ == "__main__":
    main()
