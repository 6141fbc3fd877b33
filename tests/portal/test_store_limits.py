"""What the portal stores for one patient is bounded: registered patients only, so many uploads and
bytes an hour (the portal's StoreLimits, against the CLI world's chain)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_account import Account

from ehr_client.client import EHRClient
from ehr_client.errors import AccessDenied
from ehr_client.portal.errors import TooManyRequests
from ehr_client.portal.store_limits import StoreLimits
from tests.portal_audited.conftest import client_of  # noqa: F401  (fixture)


def test_uploads_are_counted_per_patient_in_number_and_bytes(client_of: Callable[[str], EHRClient],  # noqa: F811
                                                            world: dict[str, str]) -> None:
    reader = client_of("lab")
    limits = StoreLimits(uploads=3, size=1000)
    limits.check(reader, world["patient"], 400)
    limits.check(reader, world["patient"], 400)
    with pytest.raises(TooManyRequests, match="3 uploads, 0 MiB"):
        limits.check(reader, world["patient"], 300)  # 1,100 bytes within the hour
    limits.check(reader, world["patient"], 100)  # the refused upload was not counted
    with pytest.raises(TooManyRequests):
        limits.check(reader, world["patient"], 1)  # a fourth upload


def test_only_registered_patients_may_store(client_of: Callable[[str], EHRClient]) -> None:  # noqa: F811
    with pytest.raises(AccessDenied, match="not a registered patient"):
        StoreLimits().check(client_of("lab"), Account.create().address, 10)
