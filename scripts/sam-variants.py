#!/usr/bin/env python3
"""Derives the other deployments of template.yaml, so there is one template to maintain.

  target/sam/template-zip.json    prebuilt zips (scripts/package-lambda.sh) as CodeUri: deploy
                                  with `sam deploy -t target/sam/template-zip.json`, no SAM Rust
                                  support (no beta feature, no cargo-lambda in SAM's build).
  target/sam/template-image.json  one container image (Dockerfile: binaries, ONNX Runtime and the
                                  model baked in) for both functions: parameter ImageUri; no
                                  layer, no model copy at cold start.
  target/sam/template-all-options.json
                                  template.yaml with defaults that switch every optional resource
                                  on (HTTP API with JWT, VPC, alarm e-mail, extra origins, token
                                  secrets): only for the static checks, which evaluate conditions
                                  against the defaults and would otherwise skip those resources.
  target/sam/template-model-layer.json
                                  template.yaml with the model in a layer (ModelLayerArn): also
                                  only for the static checks.

Usage: .venv/bin/python scripts/sam-variants.py [template.yaml] [out-dir]
(uses cfn-lint's YAML reader, which understands CloudFormation's short-form tags)
"""
import copy
import json
import os
import sys

from cfnlint.decode import decode

FUNCTIONS = {"IngestFunction": "ingest", "SearchFunction": "search"}
MODEL_IN_IMAGE = "/opt/model"


def load(path):
    template, matches = decode(path)
    if matches:
        sys.exit(f"{path}: {matches}")
    return json.loads(json.dumps(template))


def zip_variant(t):
    t = copy.deepcopy(t)
    for name, binary in FUNCTIONS.items():
        resource = t["Resources"][name]
        resource["Metadata"].pop("BuildMethod", None)
        resource["Metadata"].pop("BuildProperties", None)
        resource["Properties"]["CodeUri"] = f"../lambda/{binary}/bootstrap.zip"
    t["Resources"]["OnnxRuntimeLayer"]["Properties"]["ContentUri"] = "../lambda-layer/onnxruntime/"
    t["Description"] += " (prebuilt zips: scripts/sam-variants.py)"
    return t


def drop_model_statements(policies):
    """The image holds the model: no ReadModel/ListModel permissions (the policy entry that
    template.yaml keeps under the ModelFromS3 condition)."""
    policies[:] = [p for p in policies if not (isinstance(p, dict) and p.get("Fn::If", [None])[0] == "ModelFromS3")]
    for policy in policies:
        if isinstance(policy, dict) and "Statement" in policy:
            policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") not in ("ReadModel", "ListModel")]


def image_variant(t):
    t = copy.deepcopy(t)
    params = t["Parameters"]
    for gone in ("ModelBucket", "ModelPrefix", "ModelLayerArn", "OnnxRuntimeLayerArn"):
        params.pop(gone)
    for gone in ("ModelInLayer", "ModelFromS3"):
        t["Conditions"].pop(gone)
    t["Rules"].pop("ModelHasOneSource")
    if not t["Rules"]:
        t.pop("Rules")
    params["ImageUri"] = {
        "Type": "String",
        "Description": "ECR image built from the Dockerfile (both functions, ONNX Runtime, the model), "
        "e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/clipsearch:1",
    }
    t["Conditions"].pop("BuildOnnxRuntimeLayer")
    t["Resources"].pop("OnnxRuntimeLayer")
    groups = t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    for group in groups:
        if group["Label"]["default"] == "Model":
            group["Parameters"] = ["ImageUri", "Architecture"]
    function = t["Globals"]["Function"]
    for gone in ("Runtime", "Handler", "Layers"):
        function.pop(gone)
    env = function["Environment"]["Variables"]
    env.pop("CLIPSEARCH_MODEL_S3_URI")
    env.pop("ORT_DYLIB_PATH")  # set by the image
    env["CLIPSEARCH_MODEL_DIR"] = MODEL_IN_IMAGE
    for name, binary in FUNCTIONS.items():
        resource = t["Resources"][name]
        resource["Metadata"].pop("BuildMethod", None)
        resource["Metadata"].pop("BuildProperties", None)
        props = resource["Properties"]
        props.pop("CodeUri")
        props["PackageType"] = "Image"
        props["ImageUri"] = {"Ref": "ImageUri"}
        props["ImageConfig"] = {"Command": [binary]}
        props["EphemeralStorage"] = {"Size": 512}  # nothing is copied to /tmp
        drop_model_statements(props["Policies"])
    t["Description"] += " (container image: scripts/sam-variants.py)"
    return t


def all_options_variant(t):
    t = copy.deepcopy(t)
    defaults = {
        "SearchEndpoint": "HttpApi",
        "HttpApiAuth": "JWT",
        "JwtIssuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE",
        "JwtAudience": "example-client",
        "AllowedOrigins": "https://app.example.com",
        "AlarmEmail": "ops@example.com",
        "VpcSubnetIds": "subnet-0123456789abcdef0",
        "VpcSecurityGroupIds": "sg-0123456789abcdef0",
        "MilvusTokenSecretName": "clipsearch/milvus",
        "MilvusSearchTokenSecretName": "clipsearch/milvus-read",
        "IngestReservedConcurrency": 10,
        "SearchReservedConcurrency": 20,
        "OnnxRuntimeLayerArn": "arn:aws:lambda:eu-west-1:123456789012:layer:onnxruntime:1",
        "TextModelPrefix": "clip-vit-base-patch32-multilingual/",
    }
    for name, value in defaults.items():
        t["Parameters"][name]["Default"] = value
    return t


def model_layer_variant(t):
    """template.yaml deployed with the model in a layer (option C): only for the static checks,
    which would otherwise never see the ModelInLayer branch."""
    t = copy.deepcopy(t)
    t["Parameters"]["ModelLayerArn"]["Default"] = "arn:aws:lambda:eu-west-1:123456789012:layer:clipsearch-model:1"
    return t


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    out = sys.argv[2] if len(sys.argv) > 2 else "target/sam"
    os.makedirs(out, exist_ok=True)
    template = load(source)
    for name, variant in (
        ("zip", zip_variant),
        ("image", image_variant),
        ("all-options", all_options_variant),
        ("model-layer", model_layer_variant),
    ):
        path = os.path.join(out, f"template-{name}.json")
        with open(path, "w") as f:
            json.dump(variant(template), f, indent=1)
        print(path)


if __name__ == "__main__":
    main()
