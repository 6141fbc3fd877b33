"""The audited-release story the demo tells runs end to end (custodians served from threads)."""

import io

from eth_account import Account
from rich.console import Console

from ehr_client.client import Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.demo.audited_story import run_audited_story


def test_audited_story_reads_revokes_and_erases(env, ids, tmp_path):
    identities = {"governor-a": ids["gov_a"], "governor-b": ids["gov_b"], "patient": env.identities["patient"],
                  "doctor": env.identities["doctor"]}
    for name in ("custodian-1", "custodian-2", "custodian-3"):
        account = Account.create()
        env.chain.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])
        identities[name] = Identity(account, {1: generate_x25519_keypair().private_key})
    output = io.StringIO()

    result = run_audited_story(Console(file=output, width=160), env.chain, env.store, identities, workdir=tmp_path)

    text = output.getvalue()
    assert len(result.released_by) == 2
    assert len(result.erasure.receipts) == 2 and len(result.erasure.unavailable) == 1
    assert all(r.remaining == 0 for r in result.erasure.receipts)
    assert "doctor's read refused" in text and "(no-grant)" in text and "reading the erased record refused" in text
