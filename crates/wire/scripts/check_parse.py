#!/usr/bin/env python3
"""Parses responses written by the citadel-wire tests with botocore and checks what botocore reads.

Input: one or more JSON files, each a list of cases:
  {"kind": "output", "service": "iam", "operation": "GetUser", "protocol": "query",
   "status": 200, "headers": {...}, "body": "<text>", "request_id": "...", "expected": {...}}
  {"kind": "error", ... , "expected_code": "NoSuchEntity", "expected_message": "..."}
`service` is the signing name (`monitoring` for CloudWatch). For outputs the parsed dict, after
botocore's own `json_decode_policies` handler and with `ResponseMetadata` removed, must equal
`expected` with timestamps compared as epoch seconds and blobs as base64. Exit status 1 on mismatch.
"""

import base64
import datetime
import json
import sys

import botocore.awsrequest
import botocore.handlers
import botocore.parsers
import botocore.session

SERVICE_NAMES = {"monitoring": "cloudwatch"}


def normalise(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def same(parsed, expected, path):
    """Yields the paths where `parsed` and `expected` differ."""
    if isinstance(parsed, dict) and isinstance(expected, str):
        # A policy document: botocore decoded it to an object, the handler returned JSON text.
        try:
            expected = json.loads(expected)
        except ValueError:
            pass
    if isinstance(expected, dict) and isinstance(parsed, dict):
        for key in set(expected) | set(parsed):
            if key not in parsed:
                yield f"{path}.{key}: missing in parsed"
            elif key not in expected:
                yield f"{path}.{key}: unexpected {parsed[key]!r}"
            else:
                yield from same(parsed[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list) and isinstance(parsed, list):
        if len(expected) != len(parsed):
            yield f"{path}: {len(parsed)} items parsed, {len(expected)} expected"
        for index, (p, e) in enumerate(zip(parsed, expected)):
            yield from same(p, e, f"{path}[{index}]")
    elif isinstance(expected, (int, float)) and isinstance(parsed, (int, float)) \
            and not isinstance(expected, bool) and not isinstance(parsed, bool):
        if abs(float(expected) - float(parsed)) > 1e-6:
            yield f"{path}: parsed {parsed!r}, expected {expected!r}"
    elif parsed != expected or type(parsed) is not type(expected):
        yield f"{path}: parsed {parsed!r}, expected {expected!r}"


def check(session, case):
    model = session.get_service_model(SERVICE_NAMES.get(case["service"], case["service"]))
    operation = model.operation_model(case["operation"])
    headers = botocore.awsrequest.HeadersDict(case["headers"])
    response = {"status_code": case["status"], "headers": headers, "body": case["body"].encode("utf-8")}
    parser = botocore.parsers.create_parser(case["protocol"])
    parsed = parser.parse(response, operation.output_shape)
    name = f"{case['service']}.{case['operation']} ({case['kind']}, {case['protocol']})"
    problems = []
    metadata = parsed.pop("ResponseMetadata", {})
    if metadata.get("RequestId") != case["request_id"]:
        problems.append(f"request id parsed as {metadata.get('RequestId')!r}")
    if case["kind"] == "error":
        error = parsed.get("Error", {})
        if error.get("Code") != case["expected_code"]:
            problems.append(f"code parsed as {error.get('Code')!r}, expected {case['expected_code']!r}")
        if error.get("Message") != case["expected_message"]:
            problems.append(f"message parsed as {error.get('Message')!r}, expected {case['expected_message']!r}")
    else:
        botocore.handlers.json_decode_policies(parsed, operation)
        problems.extend(same(normalise(parsed), case["expected"], "$"))
    return name, problems


def main(paths):
    session = botocore.session.get_session()
    failures = 0
    total = 0
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            cases = json.load(handle)
        for case in cases:
            total += 1
            name, problems = check(session, case)
            if problems:
                failures += 1
                print(f"FAIL {name}")
                for problem in problems:
                    print(f"    {problem}")
            else:
                print(f"ok   {name}")
    print(f"{total - failures} of {total} responses parsed as expected by botocore")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
