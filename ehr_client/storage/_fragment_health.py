"""Results of `FragmentedStore.check` and `FragmentedStore.repair`."""

from __future__ import annotations

from dataclasses import dataclass

from ehr_client.storage._fragment_fetch import FragmentCheck, FragmentStatus
from ehr_client.storage.cid import Cid


@dataclass(frozen=True)
class HealthReport:
    """How much of one blob's redundancy is left.

    `fragments` has one entry per fragment of the manifest; `manifest_on` lists the nodes that
    hold a replica of the manifest, `manifest_missing` the reachable nodes that lack one, and
    `unreachable` the configured nodes that did not answer.
    """

    manifest_cid: Cid
    size: int
    k: int
    n: int
    fragments: tuple[FragmentCheck, ...]
    manifest_on: tuple[str, ...]
    manifest_missing: tuple[str, ...]
    unreachable: tuple[str, ...]

    @property
    def intact(self) -> int:
        return sum(1 for f in self.fragments if f.status is FragmentStatus.OK)

    @property
    def recoverable(self) -> bool:
        return self.intact >= self.k

    @property
    def complete(self) -> bool:
        """Every fragment intact and every configured node holds the manifest."""
        return self.intact == self.n and not self.manifest_missing and not self.unreachable

    @property
    def problems(self) -> list[str]:
        found = [f.describe() for f in self.fragments if f.status is not FragmentStatus.OK or f.found_on != f.node]
        if self.manifest_missing:
            found.append("manifest missing on " + ", ".join(self.manifest_missing))
        if self.unreachable:
            found.append("unreachable: " + ", ".join(self.unreachable))
        return found


@dataclass(frozen=True)
class RepairResult:
    """What `repair` did. `manifest_cid` is the same CID that was passed in: repair never changes it."""

    manifest_cid: Cid
    before: HealthReport
    after: HealthReport
    restored: tuple[tuple[int, str], ...]
    manifest_copies: tuple[str, ...]
    not_restored: tuple[tuple[int, str], ...]

    @property
    def complete(self) -> bool:
        return self.after.complete
