"""What the portal stores for a patient who signs the request: key shares and rotated packages, of
registered patients only, and at most so many requests and bytes an hour per patient.

A signature proves only that some key asked; anyone can make keys. Registration is a transaction
of the patient's own, and the hourly budget bounds what one registered wallet can make the portal
keep (uploads stay until gc; key shares are kept for good).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

from ehr_client.client import EHRClient
from ehr_client.errors import AccessDenied
from ehr_client.portal.errors import TooManyRequests

UPLOADS_PER_WINDOW = 120
BYTES_PER_WINDOW = 256 * 1024 * 1024
WINDOW_SECONDS = 3600
MAX_PATIENTS = 10_000  # patients remembered; the least recently seen are forgotten first


class StoreLimits:
    def __init__(self, *, uploads: int = UPLOADS_PER_WINDOW, size: int = BYTES_PER_WINDOW,
                 window: float = WINDOW_SECONDS) -> None:
        self.uploads = uploads
        self.size = size
        self.window = window
        self._stored: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, client: EHRClient, patient: str, size: int) -> None:
        """Count an upload of `size` bytes signed by `patient`, or refuse it.

        Raises:
            AccessDenied: `patient` is not a registered patient.
            TooManyRequests: this patient's uploads in the last hour reached the limit in number or bytes.
        """
        if not client.chain.call(client.chain.records.functions.isPatient(patient), action="check the patient"):
            raise AccessDenied(f"{patient} is not a registered patient; the portal stores key shares and records "
                               "for registered patients only (register from the portal first)")
        now = time.monotonic()
        with self._lock:
            stored = self._stored.setdefault(patient, deque())
            self._stored.move_to_end(patient)
            while stored and now - stored[0][0] > self.window:
                stored.popleft()
            while len(self._stored) > MAX_PATIENTS:
                self._stored.popitem(last=False)
            if len(stored) >= self.uploads or sum(s for _, s in stored) + size > self.size:
                raise TooManyRequests(f"the portal stored {len(stored)} uploads for this patient in the last hour, "
                                      f"up to its limit ({self.uploads} uploads, {self.size // (1024 * 1024)} MiB); "
                                      "try again later")
            stored.append((now, size))
