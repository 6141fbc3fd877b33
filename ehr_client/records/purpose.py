"""Purposes of use a patient consents to, in the words a wallet shows, with their FHIR codes.

A grant carries its purpose as a word ("treatment"); the patient signs that word, the chain
records keccak256 of it in `AccessGranted`, and the FHIR export turns the hash back into the
HL7 v3 PurposeOfUse coding of `Consent.provision.purpose`. Words are part of the on-chain
format (their hashes are evented): never change one, only add new ones.
"""

from __future__ import annotations

from typing import NamedTuple

from eth_utils import keccak

from ehr_client.errors import InvalidRecord

PURPOSE_OF_USE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


class Purpose(NamedTuple):
    word: str
    code: str
    display: str


PURPOSES: dict[str, Purpose] = {
    p.word: p
    for p in (
        Purpose("treatment", "TREAT", "treatment"),
        Purpose("emergency treatment", "ETREAT", "Emergency Treatment"),
        Purpose("payment", "HPAYMT", "healthcare payment"),
        Purpose("operations", "HOPERAT", "healthcare operations"),
        Purpose("research", "HRESCH", "healthcare research"),
        Purpose("clinical trial", "CLINTRCH", "clinical trial research"),
        Purpose("public health", "PUBHLTH", "public health"),
        Purpose("coverage", "COVERAGE", "coverage under policy or program"),
        Purpose("patient request", "PATRQT", "patient requested"),
    )
}
DEFAULT_PURPOSE = "treatment"


def parse_purpose(text: str) -> Purpose:
    """The purpose named by a word ("research") or its FHIR code ("HRESCH"); case does not matter.

    Raises:
        InvalidRecord: an unknown purpose; the message lists the known ones.
    """
    key = " ".join(text.strip().lower().replace("-", " ").replace("_", " ").split())
    for purpose in PURPOSES.values():
        if key in (purpose.word, purpose.code.lower()):
            return purpose
    raise InvalidRecord(f"unknown purpose of use {text!r}: use one of {', '.join(PURPOSES)}")


def purpose_hash(word: str) -> bytes:
    """What `AccessGranted.purposeHash` holds for `word`."""
    return keccak(text=word)


_BY_HASH = {purpose_hash(p.word): p for p in PURPOSES.values()}


def purpose_of_hash(digest: bytes | str | None) -> Purpose | None:
    """The known purpose whose hash is `digest` (bytes or 0x-hex, as an event decoder gives it),
    or None: no hash (an event from before purposes), or a word this client does not know."""
    if isinstance(digest, str):
        try:
            digest = bytes.fromhex(digest.removeprefix("0x"))
        except ValueError:
            return None
    return _BY_HASH.get(bytes(digest)) if digest is not None else None
