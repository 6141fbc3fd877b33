"""The Python API in one screen: a node, a deployment, a lab writes, a doctor reads.

Run: .venv/bin/python examples/quickstart.py
"""

import tempfile
from pathlib import Path

from eth_account import Account

from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.errors import AccessDenied
from ehr_client.dev.node import DEV_MNEMONIC, AnvilNode
from ehr_client.records import Scope
from ehr_client.storage import LocalStore

Account.enable_unaudited_hdwallet_features()


def dev_identity(index: int) -> Identity:
    """A funded Anvil dev account with a fresh X25519 key."""
    wallet = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return Identity.from_private_keys(wallet.key, {1: generate_x25519_keypair().private_key})


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ehr-quickstart-") as tmp:  # removed on the way out
        run(Path(tmp))


def run(work: Path) -> None:
    with AnvilNode(log_path=work / "anvil.log") as node:
        governor, lab, doctor, patient = (dev_identity(i) for i in range(4))
        deployment = deploy_suite(node.rpc_url, governor.account, network="quickstart",
                                  governors=[governor.address], threshold=1)
        chain = ChainClient(node.rpc_url, deployment)
        store = LocalStore(work / "store")  # or IpfsStore("http://127.0.0.1:5001")

        # the consortium admits the lab (role 3) and the doctor (role 1, provider)
        gov = EHRClient(chain, store, governor, state_dir=work / "gov")
        for member, role in ((lab, 3), (doctor, 1)):
            created = chain.transact(governor.account,
                                     chain.consortium.functions.propose(0, member.address, role, 3600),
                                     action="propose admission")
            proposal = chain.events_in(created, "Consortium", "ProposalCreated")[0]["proposalId"]
            chain.transact(governor.account, chain.consortium.functions.execute(proposal), action="admit")

        me, lab_client, doc_client = (EHRClient(chain, store, who, state_dir=work / name)
                                      for who, name in ((patient, "patient"), (lab, "lab"), (doctor, "doctor")))
        me.register_patient()
        for client in (me, lab_client, doc_client):
            client.publish_key()

        me.grant(lab.address, int(Scope.LAB), access="amend", expires_at=chain.now() + 3600, share_keys=False)
        glucose = {
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
        }
        written = lab_client.add_record(patient.address, glucose)
        print("anchored", written.record_id.hex()[:16], "at", written.cid)

        consent = me.sign_grant(doctor.address, int(Scope.LAB), expires_at=chain.now() + 86400,
                                deadline=chain.now() + 600)  # the patient signs; no gas needed
        gov.relay_grant(consent)  # anyone relays
        key_share, _ = me.share_keys(doctor.address, int(Scope.LAB))  # keys go only under a grant in force
        result = doc_client.read_record(written.record_id, key_share=key_share)
        print("doctor read", result.resource()["code"]["coding"][0]["code"], "verified against the chain")

        me.revoke(doctor.address)
        try:
            doc_client.read_record(written.record_id, key_share=key_share)
        except AccessDenied as refused:
            print("after revoke:", refused)
        for entry in me.audit_trail(patient.address):
            print(entry.block_number, entry.event, entry.actor[:10], entry.detail)


if __name__ == "__main__":
    main()
