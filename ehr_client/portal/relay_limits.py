"""What the portal's relayer pays for: consent of registered patients, with a purpose of use the
consortium knows, a few times an hour per patient.

Anyone can sign a grant with a throwaway key, and a purpose is any string the chain hashes (a
60 KB one costs the relayer 2.4 M gas), so without these limits one request could spend the
relayer's balance. A refused consent can still be sent from the patient's own wallet.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ehr_client.chain.eip712 import GrantMessage, RevokeMessage
from ehr_client.client import EHRClient
from ehr_client.errors import AccessDenied, InvalidRecord
from ehr_client.portal.errors import TooManyRequests
from ehr_client.records.purpose import PURPOSES

RELAYS_PER_WINDOW = 20
WINDOW_SECONDS = 3600


class RelayLimits:
    def __init__(self, *, per_window: int = RELAYS_PER_WINDOW, window: float = WINDOW_SECONDS) -> None:
        self.per_window = per_window
        self.window = window
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: EHRClient, message: GrantMessage | RevokeMessage) -> float:
        """Refuse what the relayer does not pay for; count what it will, and return the count's stamp
        for `release` when nothing was sent after all (already relayed, or refused by the chain).

        Raises:
            InvalidRecord: a purpose of use outside the consortium's list.
            AccessDenied: the signer is not a registered patient.
            TooManyRequests: this patient's relays in the last hour reached the limit.
        """
        if isinstance(message, GrantMessage) and message.purpose not in PURPOSES:
            raise InvalidRecord(f"the relayer sends grants whose purpose is one of: {', '.join(PURPOSES)}")
        registered = client.chain.call(client.chain.records.functions.isPatient(message.patient),
                                       action="check the patient is registered")
        if not registered:
            raise AccessDenied(f"{message.patient} is not a registered patient; the relayer pays only for patients' "
                               "consent (register from the portal first)")
        now = time.monotonic()
        with self._lock:
            sent = self._sent.setdefault(message.patient, deque())
            while sent and now - sent[0] > self.window:
                sent.popleft()
            if len(sent) >= self.per_window:
                raise TooManyRequests(f"the relayer sent {len(sent)} consents for this patient in the last hour; send "
                                      "this one from your own wallet, or try again later")
            sent.append(now)
        return now

    def release(self, patient: str, stamp: float) -> None:
        """Uncount a relay that sent nothing: replaying a used consent must not spend the patient's quota."""
        with self._lock:
            sent = self._sent.get(patient)
            if sent is not None and stamp in sent:
                sent.remove(stamp)
