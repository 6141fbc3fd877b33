"""Differential fuzzing of the two parsers (fixed seed): mutated packages and key shares are parsed by
ehr_client and by format.js. Package headers: both accept exactly the same inputs and read the same
fields. Key shares: JS never accepts what Python refuses (Python is more lenient, see docs/FORMAT.md),
and when both accept they read the same share."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from eth_utils import to_checksum_address

from ehr_client.errors import DecryptionError, InvalidRecord
from ehr_client.keyshare import KeyShare
from ehr_client.package import parse_header
from tests.portal_format.node import generator, load_vectors, run_node

gen = generator()
SEED = 1919
ROUNDS = 400


def _mutations(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    choice = rng.randrange(6)
    if choice == 0:
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del out[rng.randrange(len(out)) :]
    elif choice == 2:
        out.insert(rng.randrange(len(out)), rng.randrange(256))
    elif choice == 3:
        out[4] = rng.choice([0, 1, 2, 3, 4, 5, 255])
    elif choice == 4:
        out[rng.randrange(min(len(out), 400))] = rng.randrange(256)
    else:
        start = rng.randrange(len(out))
        del out[start : start + rng.randrange(1, 40)]
    return bytes(out)


def _python_header(data: bytes) -> dict[str, Any] | None:
    try:
        header, offset = parse_header(data)
    except DecryptionError:
        return None
    b = header.binding
    return {
        "version": str(header.version), "media_type": header.media_type, "header_length": offset,
        "binding": None if b is None else dict(gen.binding_json(b)),
        "wraps": [{"reader": to_checksum_address(w.reader), "key_version": w.key_version, "wrapped": w.wrapped.hex()}
                  for w in header.wraps],
        "umbral": None if header.umbral is None else {"key_version": header.umbral.key_version,
                                                      "capsule": header.umbral.capsule.hex(),
                                                      "ciphertext": header.umbral.ciphertext.hex()},
    }


def test_package_parsers_accept_the_same_bytes_and_read_the_same_fields() -> None:
    rng = random.Random(SEED)
    bases = [bytes.fromhex(c["package"]) for c in load_vectors("package")["cases"]]
    b = gen.binding_of("fuzz", 1, "patient", gen.LAB_SCOPE, "lab")
    bases.append(gen.seal_package(b, "text/plain", b"x", hashlib.sha256(b"fuzz").digest(),
                                  {"patient": (1, gen.pub("patient"))}, umbral=True, bound=False))
    inputs = [_mutations(rng, rng.choice(bases)) for _ in range(ROUNDS)] + bases
    results = run_node([{"op": "parse_package", "package": data.hex()} for data in inputs])
    accepted = 0
    for data, js in zip(inputs, results, strict=True):
        python = _python_header(data)
        if python is None:
            assert not js["ok"] and js["error"] == "FormatError", (data.hex(), js)
            continue
        accepted += 1
        assert js["ok"], (data.hex(), js)
        assert {k: js[k] for k in python} == python
    assert 0 < accepted < len(inputs)  # the mutations reach both outcomes


def _share_mutations(rng: random.Random, doc: dict[str, Any]) -> bytes:
    values: list[Any] = [0, 1, -1, 2**32, 2**53, 1.5, "1", True, None, "", "0x", [], {}, "0x" + "ab" * 20,
                         "ab" * 20, "0X" + "AB" * 20, "0x" + "00" * 32, "0x" + "11" * 93, "ehr-keyshare/1"]
    mutated = json.loads(json.dumps(doc))
    target: Any = mutated["entries"][0] if rng.random() < 0.6 else mutated
    key = rng.choice(sorted(target))
    action = rng.randrange(4)
    if action == 0:
        target[key] = rng.choice(values)
    elif action == 1:
        del target[key]
    elif action == 2:
        target[rng.choice(["extra", "Format", "record "])] = rng.choice(values)
    else:
        text = json.dumps(mutated, separators=(",", ":"), sort_keys=True).encode()
        at = rng.randrange(len(text))
        return text[:at] + bytes([rng.randrange(32, 127)]) + text[at + 1 :]
    return json.dumps(mutated, separators=(",", ":"), sort_keys=True).encode()


def _python_share(data: bytes) -> dict[str, Any] | None:
    try:
        share = KeyShare.from_bytes(data)
    except InvalidRecord:
        return None
    return {"patient": share.patient, "grantee": share.grantee,
            "entries": [{"record_id": e.record_id.hex(), "version": str(e.version), "key_version": e.key_version,
                         "wrapped": e.wrapped.hex()} for e in share.entries]}


def test_js_never_accepts_a_key_share_python_refuses() -> None:
    rng = random.Random(SEED)
    doc = json.loads(load_vectors("keyshare")["cases"][0]["share"])
    inputs = [_share_mutations(rng, doc) for _ in range(ROUNDS)]
    results = run_node([{"op": "parse_keyshare", "share_hex": data.hex()} for data in inputs])
    both = python_only = 0
    for data, js in zip(inputs, results, strict=True):
        python = _python_share(data)
        if python is None:
            assert not js["ok"] and js["error"] == "FormatError", (data, js)
        elif js["ok"]:
            both += 1
            assert {k: js[k] for k in python} == python, data
        else:
            python_only += 1
            assert js["error"] == "FormatError"
            assert _python_leniency(data), data  # only the documented leniency: strings, booleans, fractions, spaces
    assert both > 0 and python_only > 0


def _python_leniency(data: bytes) -> bool:
    """Whether `data` relies on a leniency of Python's parser that docs/FORMAT.md lists."""
    doc = json.loads(data)
    for entry in doc["entries"]:
        for field in ("version", "keyVersion"):
            value = entry[field]
            if isinstance(value, (str, bool, float)) or (isinstance(value, int) and value >= 2**53) or (
                    field == "keyVersion" and isinstance(value, int) and value >= 2**32):
                return True
        for field in ("record", "wrapped"):
            if any(c.isspace() for c in str(entry[field])):
                return True
    return False
