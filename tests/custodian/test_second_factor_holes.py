"""Holes in the custodians' second factor and request handling (SECURITY.md F-13.2 to F-13.4),
each reproduced as the attacker acts, against real custodian processes.

F-13.2  the TOTP lockout was counted under the request's spelling of the grantee's address and
        checked under the checksummed one: 60 wrong codes in lower case, then the right code,
        opened a session. Now every address is normalised once (EIP-55) and there is a per-grantee
        rate limit on session attempts.
F-13.3  TOTP secrets were sealed under a key derived from the custodian's current X25519 key, so
        rotating that key made every enrolled grantee's session fail with HTTP 500. Each secret now
        records the key version that seals it and is sealed again under the current key on use.
F-13.4  any body size was parsed, and every refusal, signed or not, became a database row. Bodies
        over 64 KiB are refused with 413 before parsing; only refusals of requests with a verified
        signature are stored, the rest are counted, and past a limit a client address gets 429.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ehr_client.custodian import messages
from ehr_client.sharing.remote import CustodianSet
from ehr_client.custodian.totp import TotpDevice
from ehr_client.keys import Keystore
from tests.custodian.conftest import PASSWORD, CustodianProcess, Env, _admit, _custodian_home, custodian_address

UNSIGNED_LIMIT = 50


@dataclasses.dataclass
class Strict:
    """One extra custodian process with a high per-grantee limit (so the lockout alone is tested)
    and a low limit of unsigned refusals per client address."""

    process: CustodianProcess
    address: str


def _member(env: Env, ids: dict[str, Any]) -> LocalAccount:
    """A provider admitted just for one test, so its lockouts and used codes touch no other test."""
    account: LocalAccount = Account.create()
    env.chain.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]
    _admit(env.chain, ids, account.address, "provider")
    return account


@pytest.fixture(scope="module")
def strict(env: Env, ids: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Strict]:
    root = tmp_path_factory.mktemp("strict-custodian")
    wallet = Account.create()
    env.chain.w3.provider.make_request("anvil_setBalance", [wallet.address, hex(10**20)])  # type: ignore[arg-type]
    _admit(env.chain, ids, wallet.address, "custodian")
    home, address = _custodian_home(root, bytes(wallet.key), env.chain)
    first = env.custodians[0]
    process = CustodianProcess("strict", home, first.rpc_url, first.deployments, first.network,
                               extra_args=("--session-attempts-per-minute", "1000",
                                           "--unsigned-refusals-per-minute", str(UNSIGNED_LIMIT)))
    process.start()
    try:
        yield Strict(process, address)
    finally:
        process.stop()


def _session_body(env: Env, custodian: str, account: LocalAccount, code: str, *, spelling: str) -> dict[str, Any]:
    message = {"custodian": custodian, "grantee": spelling, "issuedAt": int(time.time()),
               "nonce": messages.new_nonce()}
    domain = messages.CustodianDomain(env.chain.chain_id, env.chain.consent.address)
    return {"message": message, "signature": messages.sign(bytes(account.key), domain, "OpenSession", message),
            "code": code}


def _spellings(address: str) -> list[str]:
    body = address[2:]
    return [address, "0x" + body.lower(), "0x" + body.upper(), "0X" + body.lower(),
            "0x" + "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(body))]


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_lockout_holds_whatever_the_spelling_of_the_address(env: Env, running: Any, strict: Strict,
                                                            ids: dict[str, Any]) -> None:
    grantee = _member(env, ids)
    url = strict.process.url
    device = TotpDevice()
    device.add(strict.address, CustodianSet.connect(env.chain, [url]).clients[0].enroll(grantee))
    spellings = _spellings(grantee.address)
    answers = []
    for i in range(60):
        body = _session_body(env, strict.address, grantee, _wrong(device.code(strict.address)),
                             spelling=spellings[i % len(spellings)])
        answers.append(httpx.post(url + "/v1/sessions", json=body, timeout=10).json()["reason"])
    assert answers[:5] == ["mfa-failed"] * 5 and set(answers[5:]) == {"mfa-locked"}
    # the right code, in every spelling: still locked, no session
    for spelling in spellings:
        right = _session_body(env, strict.address, grantee, device.code(strict.address), spelling=spelling)
        answer = httpx.post(url + "/v1/sessions", json=right, timeout=10)
        assert (answer.status_code, answer.json()["reason"]) == (403, "mfa-locked")
    store = strict.process.store()
    try:
        rows = [r for r in store.refusals() if r.caller and r.caller.lower() == grantee.address.lower()]
        assert {r.caller for r in rows} == {grantee.address}  # one spelling: the checksummed one
        assert len(rows) == 60 + len(spellings)
    finally:
        store.close()


def test_per_grantee_rate_limit_bounds_session_attempts(env: Env, running: Any, ids: dict[str, Any]) -> None:
    """The shared custodians run with the default limit (10 attempts a minute per grantee)."""
    grantee = _member(env, ids)
    url, address = env.custodians[1].url, custodian_address(env, 1)
    device = TotpDevice()
    device.add(address, CustodianSet.connect(env.chain, [url]).clients[0].enroll(grantee))
    statuses = []
    for i in range(14):
        body = _session_body(env, address, grantee, _wrong(device.code(address)), spelling=_spellings(grantee.address)[i % 5])
        statuses.append(httpx.post(url + "/v1/sessions", json=body, timeout=10).status_code)
    assert statuses[:10] == [403] * 10 and statuses[10:] == [429] * 4
    store = env.custodians[1].store()
    try:
        assert len(store.refusals(caller=grantee.address)) == 10  # the rate-limited ones are only counted
    finally:
        store.close()


def test_rotating_the_custodians_key_keeps_enrolled_grantees_able_to_log_in(
    env: Env, running: Any, strict: Strict, ids: dict[str, Any]
) -> None:
    grantee = _member(env, ids)
    url = strict.process.url
    device = TotpDevice()
    device.add(strict.address, CustodianSet.connect(env.chain, [url]).clients[0].enroll(grantee))
    before = httpx.get(url + "/v1/info", timeout=5).json()["x25519Version"]

    strict.process.stop()
    keystore = Keystore(strict.process.home / "keys" / "custodian", scrypt_n=2**4)
    rotated = keystore.rotate_encryption_key("x25519", password=PASSWORD)
    wallet = keystore.load_wallet("custodian", PASSWORD)
    env.chain.transact(wallet, env.chain.keys.functions.publishKey(1, rotated.public_key), action="rotate key")
    strict.process.start()
    url = strict.process.url
    assert httpx.get(url + "/v1/info", timeout=5).json()["x25519Version"] > before

    answer = httpx.post(url + "/v1/sessions", json=_session_body(env, strict.address, grantee,
                                                                  device.code(strict.address),
                                                                  spelling=grantee.address), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["session"].startswith("0x")
    # the secret was sealed again under the new key: it survives the old key's removal from use
    store = strict.process.store()
    try:
        sealed = store.totp_secret(grantee.address)
        assert sealed is not None and sealed[1] == rotated.version
    finally:
        store.close()


def test_unsigned_requests_add_no_rows_and_are_rate_limited(env: Env, running: Any, strict: Strict) -> None:
    url = strict.process.url
    store = strict.process.store()
    try:
        rows_before = store.count_refusal_rows()
    finally:
        store.close()
    statuses = []
    fake = {"custodian": strict.address, "grantee": "0x" + "ab" * 20, "issuedAt": int(time.time()),
            "nonce": "0x" + "00" * 32}
    for i in range(200):
        body = {"message": {**fake, "nonce": f"0x{i:064x}"}, "signature": "0x" + "11" * 65, "code": "123456"}
        statuses.append(httpx.post(url + "/v1/sessions", json=body, timeout=10).status_code)
    assert set(statuses[:UNSIGNED_LIMIT]) == {403} and set(statuses[UNSIGNED_LIMIT:]) == {429}
    store = strict.process.store()
    try:
        assert store.count_refusal_rows() == rows_before
    finally:
        store.close()
    # counted, not stored
    assert httpx.get(url + "/v1/info", timeout=5).json()["unrecordedRefusals"]["bad-signature"] == UNSIGNED_LIMIT


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_a_40_mb_body_is_refused_unread(env: Env, running: Any) -> None:
    process = env.custodians[2]
    assert process.proc is not None
    peak_before = _peak_rss_kib(process.proc.pid)
    huge = b'{"message": {}, "signature": "' + b"a" * (40 * 1024 * 1024) + b'"}'
    answer = httpx.post(process.url + "/v1/enroll", content=huge, headers={"content-type": "application/json"},
                        timeout=30)
    assert (answer.status_code, answer.json()["reason"]) == (413, "too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts what arrives
        yield b'{"message": {}, "signature": "'
        for _ in range(40 * 16):
            yield b"a" * 65536

    try:
        streamed = httpx.post(process.url + "/v1/enroll", content=chunks(), timeout=30)
        assert streamed.status_code == 413
    except httpx.HTTPError:
        pass  # the server may close the connection while the client still writes: also refused
    assert _peak_rss_kib(process.proc.pid) - peak_before < 16 * 1024  # far below 40 MB
    assert httpx.get(process.url + "/v1/info", timeout=5).status_code == 200
