"""A validator that hangs (SIGSTOP) as the supervisor restarts it during a settle.

`settle_forks` stops and restarts the validators off the kept fork; each restart waits up to 60 s
for JSON-RPC and then 30 s for SIGTERM before SIGKILL, and the fallback restarts once more.
`Supervisor.stop` joins the thread for at most 180 s and returns whether or not it ended.
"""

from __future__ import annotations

import os
import signal
import threading
import time


from ehr_client.dev.geth import CliqueNetwork
from tests.network.test_equal_forks import equal_forks  # noqa: F401  (fixture)


class HangEachRestartOnce:
    """SIGSTOP the first new geth process of each validator: a node that hangs as it comes back."""

    def __init__(self, network: CliqueNetwork) -> None:
        self.network = network
        self.known = {node.name: node.pid for node in network.validators}
        self.hung: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> HangEachRestartOnce:
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            for node in self.network.validators:
                pid = node.pid
                if pid is not None and pid != self.known[node.name] and node.name not in self.hung:
                    os.kill(pid, signal.SIGSTOP)
                    self.hung[node.name] = pid
                self.known[node.name] = pid if pid is not None else self.known[node.name]

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for pid in self.hung.values():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def _supervisor_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "clique-supervisor" and thread.is_alive()]


def test_supervised_ends_its_thread_when_a_restarted_validator_hangs(equal_forks: CliqueNetwork) -> None:  # noqa: F811
    network = equal_forks
    with HangEachRestartOnce(network) as hang:
        with network.supervised():
            deadline = time.monotonic() + 60
            while not hang.hung and time.monotonic() < deadline:
                time.sleep(0.1)
            assert hang.hung, "the supervisor settled the equal forks (a validator was restarted)"
            left = time.monotonic()
        took = time.monotonic() - left
        still_running = _supervisor_threads()
        print(f"supervised() took {took:.0f}s to exit; hung {sorted(hang.hung)}; thread alive: {bool(still_running)}")
        try:
            assert not still_running, f"supervised() returned after {took:.0f}s with the supervisor still settling"
        finally:
            for thread in still_running:
                thread.join(timeout=240)  # let it finish its restarts before the network stops
