#!/usr/bin/env python3
"""Writes the compact botocore models that citadel-wire embeds.

The codec in `crates/wire/src/codec/` reads these files at run time (through `include_str!`),
so the wire format follows botocore's contract instead of hand-written per-operation code.
Documentation, examples and other keys the codec never reads are dropped to keep the files small.

Usage: python3 crates/wire/scripts/gen_models.py   (run from anywhere; rewrites crates/wire/models/*.json)
"""

import gzip
import json
import os
import sys

import botocore

# Output file name (the SigV4 signing name) -> botocore data directory and API version.
SERVICES = {
    "iam": ("iam", "2010-05-08"),
    "sts": ("sts", "2011-06-15"),
    "kms": ("kms", "2014-11-01"),
    "cloudtrail": ("cloudtrail", "2013-11-01"),
    "logs": ("logs", "2014-03-28"),
    "monitoring": ("cloudwatch", "2010-08-01"),
}

METADATA_KEYS = {
    "apiVersion", "endpointPrefix", "jsonVersion", "protocol", "protocols", "signingName",
    "targetPrefix", "xmlNamespace", "awsQueryCompatible", "serviceId", "uid", "globalEndpoint",
}
OPERATION_KEYS = {"name", "http", "input", "output", "errors", "endpoint"}
REF_KEYS = {
    "shape", "locationName", "location", "flattened", "xmlNamespace", "timestampFormat",
    "idempotencyToken", "resultWrapper", "queryName", "xmlAttribute", "jsonvalue", "hostLabel",
}
SHAPE_KEYS = {
    "type", "members", "member", "key", "value", "required", "min", "max", "pattern", "enum",
    "error", "exception", "fault", "flattened", "timestampFormat", "locationName", "xmlNamespace",
    "union", "payload", "document",
}


def strip_ref(ref):
    return {k: v for k, v in ref.items() if k in REF_KEYS}


def strip_shape(shape):
    out = {}
    for key, value in shape.items():
        if key not in SHAPE_KEYS:
            continue
        if key == "members":
            value = {name: strip_ref(ref) for name, ref in value.items()}
        elif key in ("member", "key", "value"):
            value = strip_ref(value)
        elif key == "xmlNamespace" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in ("uri", "prefix")}
        out[key] = value
    return out


def strip_operation(op):
    out = {}
    for key, value in op.items():
        if key not in OPERATION_KEYS:
            continue
        if key in ("input", "output"):
            value = strip_ref(value)
        elif key == "errors":
            value = [e["shape"] for e in value]
        out[key] = value
    return out


def main():
    data_dir = os.path.join(os.path.dirname(botocore.__file__), "data")
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
    os.makedirs(out_dir, exist_ok=True)
    total = 0
    for name, (directory, version) in SERVICES.items():
        path = os.path.join(data_dir, directory, version, "service-2.json.gz")
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            model = json.load(handle)
        compact = {
            "metadata": {k: v for k, v in model["metadata"].items() if k in METADATA_KEYS},
            "operations": {n: strip_operation(op) for n, op in sorted(model["operations"].items())},
            "shapes": {n: strip_shape(s) for n, s in sorted(model["shapes"].items())},
        }
        text = json.dumps(compact, separators=(",", ":"), sort_keys=False, ensure_ascii=False)
        target = os.path.join(out_dir, name + ".json")
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.write("\n")
        size = os.path.getsize(target)
        total += size
        print(f"{name:12} {directory}/{version}: {len(compact['operations']):4} operations, "
              f"{len(compact['shapes']):5} shapes, {size:8} bytes")
    print(f"{'total':12} {total} bytes (botocore {botocore.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
