#!/usr/bin/env python3
"""Static checks of the deployment, run by `make test`: cfn-lint and checkov on template.yaml and
its derived variants (scripts/sam-variants.py: prebuilt zips, container image, every option on, model in a layer),
and checkov on the Dockerfile. Fails on any failed check, any parse error, or a scan that saw no
resources (checkov exits 0 then). Prints passed/failed/skipped and each skip with its reason.

Usage: .venv/bin/python scripts/check-iac.py   (checkov from .venv-checkov, made by make setup)
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKOV = os.path.join(ROOT, ".venv-checkov", "bin", "checkov")
CFN_LINT = os.path.join(ROOT, ".venv", "bin", "cfn-lint")
VARIANTS = os.path.join(ROOT, "target", "sam")


def run(cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def checkov(path, framework):
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE")  # no call home to a vendor API
    out = subprocess.run(
        [CHECKOV, "-f", path, "--framework", framework, "-o", "json"],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        sys.exit(f"checkov {path}: no JSON report (exit {out.returncode})\n{out.stdout}\n{out.stderr}")
    if isinstance(report, list):
        report = report[0]
    summary = report.get("summary", {})
    results = report.get("results", {})
    return summary, results.get("failed_checks", []), results.get("skipped_checks", [])


def main():
    problems = []
    variants = run([sys.executable, "scripts/sam-variants.py", "template.yaml", VARIANTS])
    if variants.returncode:
        sys.exit(variants.stdout + variants.stderr)
    templates = ["template.yaml"] + [
        os.path.relpath(os.path.join(VARIANTS, f"template-{v}.json"), ROOT) for v in ("zip", "image", "all-options", "model-layer")
    ]
    for template in templates:
        lint = run([CFN_LINT, template])
        if lint.returncode:
            problems.append(f"cfn-lint {template}:\n{lint.stdout}{lint.stderr}")
        else:
            print(f"cfn-lint {template}: ok")

    skips = {}
    for path, framework in [(t, "cloudformation") for t in templates] + [("Dockerfile", "dockerfile")]:
        summary, failed, skipped = checkov(path, framework)
        print(
            f"checkov {path}: passed {summary.get('passed', 0)}, failed {summary.get('failed', 0)}, "
            f"skipped {summary.get('skipped', 0)} ({summary.get('resource_count', 0)} resources)"
        )
        if summary.get("parsing_errors", 0) or not summary.get("resource_count", 0):
            problems.append(f"checkov {path}: parsing errors or no resources scanned: {summary}")
        for check in failed:
            problems.append(f"checkov {path}: {check['check_id']} {check['check_name']} on {check['resource']}")
        for check in skipped:
            reason = " ".join((check.get("check_result", {}).get("suppress_comment") or "").split())
            if not reason:
                problems.append(f"checkov {path}: {check['check_id']} on {check['resource']} is skipped without a reason")
            skips.setdefault((check["check_id"], reason), set()).add(check["resource"].split(".")[-1])
    print("deliberate skips (written beside the resource):")
    for (check_id, reason), resources in sorted(skips.items()):
        print(f"  {check_id} {', '.join(sorted(resources))}: {reason}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
