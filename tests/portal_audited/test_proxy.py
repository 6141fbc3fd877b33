"""The portal forwards wallet-signed custodian requests to its custodians, unchanged, and refuses
with typed JSON what it must: unknown custodians, unsigned or misaddressed requests (never forwarded,
so they cannot spend the custodians' per-address refusal budget for every patient of the portal),
bodies over the custodians' limit, custodians that are down. Custodians' own refusals come back typed."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import httpx
from eth_account import Account
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ehr_client.sharing.remote import ErasureReceipt
from tests.cli.conftest import CAST, cli_env, dev_key
from tests.portal.conftest import Portal, start_portal, stop_portal
from tests.portal_audited.fronts import ResigningCustodian, target
from tests.portal_audited.conftest import THRESHOLD, CustodianProcess, fragments_at
from tests.portal_audited.fragments import deposit_body, deposit_items, domain_of, signed
from tests.hang import hang

PATIENT_KEY = dev_key(CAST.index("patient"))
STRANGER_KEY = dev_key(CAST.index("stranger"))


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["message"]
    return error


def unrecorded(custodian: CustodianProcess) -> int:
    return sum(custodian.info()["unrecordedRefusals"].values())


def test_listing_names_each_custodian_as_the_chain_confirms_it(audited_portal: Portal, running, world):
    listing = audited_portal.get("/api/custodians").json()

    assert listing["configured"] is True and listing["threshold"] == THRESHOLD
    assert listing["unreachable"] == 0 and listing["rejected"] == 0
    assert listing["domain"]["name"] == "EHR Key Custodian" and listing["domain"]["version"] == "1"
    assert {c["address"] for c in listing["custodians"]} == {c.address for c in running}
    for custodian in running:
        info = custodian.info()
        entry = next(c for c in listing["custodians"] if c["address"] == custodian.address)
        assert entry["x25519PublicKey"] == info["x25519PublicKey"] and entry["x25519Version"] == info["x25519Version"]
        assert "url" not in entry  # the page talks to the portal only


def test_deposit_through_the_portal_is_stored_once_and_a_replay_is_refused(
        audited_portal: Portal, running, world, home, client_of, lab_result):
    listing = audited_portal.get("/api/custodians").json()
    domain = domain_of(listing)
    items = deposit_items(client_of("patient"), lab_result, world["doctor"], listing["custodians"],
                          threshold=THRESHOLD)
    bodies = {a: deposit_body(PATIENT_KEY, domain, a, world["doctor"], i) for a, i in items.items()}

    for address, body in bodies.items():
        answer = audited_portal.post(f"/api/custodians/{address}/deposit", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"stored": 1}
    first = next(iter(bodies))
    replay = audited_portal.post(f"/api/custodians/{first}/deposit", json=bodies[first])

    assert replay.status_code == 403
    error = error_of(replay)
    assert error["type"] == "CustodianRefused" and error["reason"] == "replayed-request"
    assert error["custodian"] == first
    assert [fragments_at(c, home, lab_result) for c in running] == [1, 1, 1]


def test_destroy_through_the_portal_returns_a_receipt_the_custodian_signed(
        audited_portal: Portal, running, world, home, client_of, lab_result):
    listing = audited_portal.get("/api/custodians").json()
    domain = domain_of(listing)
    custodian = listing["custodians"][0]
    items = deposit_items(client_of("patient"), lab_result, world["doctor"], listing["custodians"],
                          threshold=THRESHOLD)
    stored = audited_portal.post(f"/api/custodians/{custodian['address']}/deposit",
                                 json=deposit_body(PATIENT_KEY, domain, custodian["address"], world["doctor"],
                                                   items[custodian["address"]]))
    assert stored.status_code == 200, stored.text
    destroy = signed(PATIENT_KEY, domain, "Destroy", {"custodian": custodian["address"], "patient": world["patient"],
                                                       "recordId": "0x" + lab_result.hex()})

    answer = audited_portal.post(f"/api/custodians/{custodian['address']}/destroy", json=destroy)

    assert answer.status_code == 200, answer.text
    receipt = ErasureReceipt.from_json(answer.json())
    receipt.verify(domain)
    assert receipt.custodian == custodian["address"] and receipt.record_id == lab_result
    assert receipt.destroyed == 1 and receipt.remaining == 0
    holder = next(c for c in running if c.address == custodian["address"])
    assert fragments_at(holder, home, lab_result) == 0


def test_audit_query_through_the_portal_answers_the_custodians_releases(audited_portal: Portal, running, world):
    listing = audited_portal.get("/api/custodians").json()
    custodian = listing["custodians"][1]["address"]
    query = signed(PATIENT_KEY, domain_of(listing), "AuditQuery", {"custodian": custodian, "patient": world["patient"]})

    answer = audited_portal.post(f"/api/custodians/{custodian}/audit", json=query)

    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json()["releases"], list)


def test_unknown_custodian_or_action_is_404_and_nothing_is_forwarded(audited_portal: Portal, running, world):
    listing = audited_portal.get("/api/custodians").json()
    domain = domain_of(listing)
    stranger = Account.from_key(STRANGER_KEY).address
    query = signed(PATIENT_KEY, domain, "AuditQuery", {"custodian": stranger, "patient": world["patient"]})
    before = [unrecorded(c) for c in running]

    unknown = audited_portal.post(f"/api/custodians/{stranger}/audit", json=query)
    action = audited_portal.post(f"/api/custodians/{running[0].address}/release", json=query)
    not_address = audited_portal.post("/api/custodians/0x12/audit", json=query)

    for answer in (unknown, action, not_address):
        assert answer.status_code == 404
        assert error_of(answer)["type"] == "UnknownCustodian"
    assert [unrecorded(c) for c in running] == before


def test_unsigned_forged_or_misaddressed_requests_are_refused_by_the_portal_not_forwarded(
        audited_portal: Portal, running, world, lab_result):
    listing = audited_portal.get("/api/custodians").json()
    domain = domain_of(listing)
    first, second = running[0].address, running[1].address
    message = {"custodian": first, "patient": world["patient"], "recordId": "0x" + lab_result.hex()}
    forged = signed(STRANGER_KEY, domain, "Destroy", message)  # names the patient, signed by someone else
    for_first = signed(PATIENT_KEY, domain, "Destroy", message)
    before = [unrecorded(c) for c in running]

    garbage = audited_portal.post(f"/api/custodians/{first}/destroy", content=b"{not json",
                                  headers={"Content-Type": "application/json"})
    unsigned = audited_portal.post(f"/api/custodians/{first}/destroy", json={"message": message})
    bad_signature = audited_portal.post(f"/api/custodians/{first}/destroy", json=forged)
    misaddressed = audited_portal.post(f"/api/custodians/{second}/destroy", json=for_first)
    as_text = audited_portal.post(f"/api/custodians/{first}/destroy", content=json.dumps(for_first),
                                  headers={"Content-Type": "text/plain"})

    assert (garbage.status_code, error_of(garbage)["reason"]) == (400, "malformed")
    assert (unsigned.status_code, error_of(unsigned)["reason"]) == (400, "malformed")
    assert (bad_signature.status_code, error_of(bad_signature)["reason"]) == (403, "bad-signature")
    assert (misaddressed.status_code, error_of(misaddressed)["reason"]) == (403, "wrong-custodian")
    assert as_text.status_code == 415 and error_of(as_text)["type"] == "UnsupportedContentType"
    assert [unrecorded(c) for c in running] == before


def test_a_custodians_own_refusal_comes_back_typed(audited_portal: Portal, running, world, lab_result):
    listing = audited_portal.get("/api/custodians").json()
    stranger = Account.from_key(STRANGER_KEY).address
    custodian = running[2].address
    not_theirs = signed(STRANGER_KEY, domain_of(listing), "Destroy",
                        {"custodian": custodian, "patient": stranger, "recordId": "0x" + lab_result.hex()})

    answer = audited_portal.post(f"/api/custodians/{custodian}/destroy", json=not_theirs)

    assert answer.status_code == 403
    error = error_of(answer)
    assert error["type"] == "CustodianRefused" and error["reason"] == "not-patient" and error["custodian"] == custodian


def test_body_over_the_custodians_limit_is_413_before_anything_is_forwarded(audited_portal: Portal, running):
    before = [unrecorded(c) for c in running]

    answer = audited_portal.post(f"/api/custodians/{running[0].address}/deposit",
                                 content=b'{"message": {}, "pad": "' + b"a" * 70_000 + b'"}',
                                 headers={"Content-Type": "application/json"})

    assert answer.status_code == 413 and error_of(answer)["type"] == "RequestTooLarge"
    assert [unrecorded(c) for c in running] == before


def test_a_custodian_down_is_503_and_listed_as_unreachable(audited_portal: Portal, running, world, lab_result):
    listing = audited_portal.get("/api/custodians").json()
    down = running[0]
    destroy = signed(PATIENT_KEY, domain_of(listing), "Destroy",
                     {"custodian": down.address, "patient": world["patient"], "recordId": "0x" + lab_result.hex()})
    down.stop()

    answer = audited_portal.post(f"/api/custodians/{down.address}/destroy", json=destroy)
    after = audited_portal.get("/api/custodians").json()

    assert answer.status_code == 503 and error_of(answer)["type"] == "CustodianUnavailable"
    assert down.address in error_of(answer)["message"]
    assert after["unreachable"] == 1 and after["unreachableCustodians"] == [down.address]
    assert {c["address"] for c in after["custodians"]} == {c.address for c in running[1:]}


class KeySwappingCustodian(ResigningCustodian):
    """A URL that answers as a real custodian but reports an X25519 key the custodian never published:
    fragments sealed to it would be readable by whoever runs it."""

    async def forward(self, request: Request) -> Response:
        if request.url.path == "/v1/info":
            async with httpx.AsyncClient(timeout=10) as client:
                info = (await client.get(self.behind + target(request))).json()
            info["x25519PublicKey"] = "0x" + os.urandom(32).hex()
            return JSONResponse(info)
        return await super().forward(request)


def test_a_url_whose_key_the_chain_contradicts_is_rejected_not_listed_and_not_forwarded_to(
        running, world, home, anvil, tmp_path):
    liar = KeySwappingCustodian(running[2].url)
    liar.start()
    urls = ["--custodian", running[0].url, "--custodian", running[1].url, "--custodian", liar.url]
    portal = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path, *urls)
    try:
        listing = portal.get("/api/custodians").json()
        query = signed(PATIENT_KEY, domain_of(listing), "AuditQuery",
                       {"custodian": running[2].address, "patient": world["patient"]})
        forwarded = portal.post(f"/api/custodians/{running[2].address}/audit", json=query)
    finally:
        stop_portal(portal.process)
        liar.stop()

    assert listing["rejected"] == 1 and listing["unreachable"] == 0
    assert {c["address"] for c in listing["custodians"]} == {running[0].address, running[1].address}
    assert forwarded.status_code == 404 and error_of(forwarded)["type"] == "UnknownCustodian"
    assert "not used" in portal.log.read_text() and "has not published" in portal.log.read_text()


def test_a_hung_custodian_ends_in_a_typed_503_within_the_portals_timeout(audited_portal: Portal, running, world,
                                                                          lab_result):
    listing = audited_portal.get("/api/custodians").json()
    hung = running[1]
    destroy = signed(PATIENT_KEY, domain_of(listing), "Destroy",
                     {"custodian": hung.address, "patient": world["patient"], "recordId": "0x" + lab_result.hex()})
    assert hung.process is not None
    hang(hung.process.pid, group=True)
    try:
        answer = audited_portal.post(f"/api/custodians/{hung.address}/destroy", json=destroy)
    finally:
        os.killpg(hung.process.pid, signal.SIGCONT)

    assert answer.status_code == 503 and error_of(answer)["type"] == "CustodianUnavailable"
    assert "ReadTimeout" in error_of(answer)["message"]


def test_portal_refuses_a_threshold_above_the_custodians_it_names(cli):
    refused = cli("portal", "--custodian", "http://127.0.0.1:9", "--threshold", "2", expect=None)

    assert refused.exit_code != 0
    assert "a threshold of 2 needs at least 2 custodians (got 1)" in refused.output
