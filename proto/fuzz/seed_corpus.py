#!/usr/bin/env python3
"""Seeds the fuzz corpora from the real Mesos 1.12 captures.

Usage (from proto/fuzz): python3 seed_corpus.py [fixture dir]
The fixture dir defaults to ../../tests/fixtures/mesos-1.12. Writes corpus/<target>/
files in the input layout each target expects (a selector byte, then the body).
"""

import hashlib
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "../../tests/fixtures/mesos-1.12"


def records(stream: bytes):
    """Splits a RecordIO stream (the captures are well formed)."""
    out, i = [], 0
    while i < len(stream):
        j = stream.index(b"\n", i)
        n = int(stream[i:j])
        out.append(stream[j + 1 : j + 1 + n])
        i = j + 1 + n
    return out


def write(target: str, data: bytes):
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main():
    if not (FIXTURES / "README.md").is_file():
        sys.exit(f"fixtures not found at {FIXTURES}")
    # codec selector: bit 0 = JSON, bits 1-2 = executor Event / Call, scheduler Event / Call.
    for path in sorted(FIXTURES.rglob("*.bin")):
        stream = path.read_bytes()
        write("recordio", bytes([255, 5]) + stream)
        json_encoded = ".json." in path.name
        kind = 0 if "executor" in path.name else 2
        for record in records(stream):
            write("codec", bytes([(kind << 1) | json_encoded]) + record)
    for name in ["scheduler-call-responses.json", "executor-call-responses.json"]:
        for call in json.loads((FIXTURES / name).read_text()):
            body = call["request_body"].encode()
            if call["request_body_encoding"] != "utf-8" or not body:
                continue
            kind = 1 if "executor" in name else 3
            write("codec", bytes([(kind << 1) | 1]) + body)
    # payload: version byte 1, then a few small postcard bodies per type.
    for selector in range(5):
        for body in [b"", b"\x00", b"\x01\x00", b"\x00" * 8]:
            write("payload", bytes([selector, 1]) + body)


main()
