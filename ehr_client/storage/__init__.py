"""Content-addressed blob storage: a local directory store, an IPFS (Kubo) store, and a store that
erasure-codes blobs across several of them."""

from ehr_client.storage.base import BlobStore
from ehr_client.storage.cid import Cid, cid_for_bytes, cid_from_bytes, cid_to_bytes, parse_cid
from ehr_client.storage.fragmented import FragmentedStore
from ehr_client.storage.ipfs import IpfsStore
from ehr_client.storage.local import LocalStore

__all__ = [
    "BlobStore",
    "Cid",
    "FragmentedStore",
    "IpfsStore",
    "LocalStore",
    "cid_for_bytes",
    "cid_from_bytes",
    "cid_to_bytes",
    "parse_cid",
]
