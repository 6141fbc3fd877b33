"""/api/rotated unpins the version a patient "rotated away": any version superseded by one its
patient wrote. The chain cannot tell a key rotation from a patient's correction of a record, and
the endpoint takes no credential, no body and no Content-Type (so another site can send it too):
anyone deletes the history a patient's amendment was documented to keep."""

from __future__ import annotations

import json
from pathlib import Path

from ehr_client.storage import LocalStore
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal

RESULT = {
    "resourceType": "Observation", "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}]},
    "valueQuantity": {"value": 9.1, "unit": "g/dL"},
}


def test_anyone_unpins_the_history_a_patients_amendment_keeps(
    portal: Portal, cli: Cli, world: dict[str, str], home: Path, tmp_path: Path
) -> None:
    original = tmp_path / "hb.json"
    original.write_text(json.dumps(RESULT))
    first = str(cli.json("record", "add", world["patient"], str(original), wallet="lab")["recordId"])
    corrected = tmp_path / "hb-corrected.json"
    corrected.write_text(json.dumps({**RESULT, "valueQuantity": {"value": 9.4, "unit": "g/dL"}}))
    # the patient corrects the lab's value: `ehr record amend` says "the old version stays as history"
    cli.json("record", "amend", first, str(corrected), wallet="patient")
    v1 = next(r for r in portal.get(f"/api/records/{world['patient']}").json()["records"] if r["recordId"] == first)
    store = LocalStore(home / "store")
    assert store.has(v1["cid"])

    # the attacker: one bodiless POST, as any local process or any web page could send it
    answer = portal.post(f"/api/rotated/{first}", headers={"Origin": "http://evil.example"})
    still_there = store.has(v1["cid"])
    history = cli("record", "get", first, wallet="patient", expect=None)
    assert answer.status_code == 403 and still_there, (
        f"HTTP {answer.status_code} {answer.text[:200]}; version 1's ciphertext in store: {still_there}; "
        f"the patient reading their history: exit {history.exit_code}, {history.stderr.strip()[-200:]!r}")


def test_another_site_in_the_patients_browser_deletes_that_history_blind(
    portal: Portal, cli: Cli, world: dict[str, str], home: Path, tmp_path: Path, browser: object
) -> None:
    """The same POST from a page of another origin open in the patient's browser (here a local web
    app at http://localhost:OTHER; record ids are public on chain and `ehr portal` listens on 8780 by
    default). A no-cors POST without a body needs no preflight, and the Host header is the portal's."""
    import http.server
    import threading

    original = tmp_path / "hb.json"
    original.write_text(json.dumps({**RESULT, "valueQuantity": {"value": 8.8, "unit": "g/dL"}}))
    first = str(cli.json("record", "add", world["patient"], str(original), wallet="lab")["recordId"])
    corrected = tmp_path / "hb-corrected.json"
    corrected.write_text(json.dumps({**RESULT, "valueQuantity": {"value": 8.9, "unit": "g/dL"}}))
    cli.json("record", "amend", first, str(corrected), wallet="patient")
    v1 = next(r for r in portal.get(f"/api/records/{world['patient']}").json()["records"] if r["recordId"] == first)
    store = LocalStore(home / "store")
    assert store.has(v1["cid"])

    evil = (f"<html><body><script>fetch('{portal.url}/api/rotated/{first}', {{method: 'POST', mode: 'no-cors'}})"
            ".then(() => { document.title = 'sent'; }, (e) => { document.title = 'blocked ' + e; });"
            "</script></body></html>").encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.goto(f"http://localhost:{server.server_address[1]}/")
        page.wait_for_function("() => document.title !== ''")
        title = page.title()
    finally:
        context.close()
        server.shutdown()
        server.server_close()
    assert store.has(v1["cid"]), f"a page at another origin ({title}) unpinned version 1 ({v1['cid']})"
