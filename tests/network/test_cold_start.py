"""A stopped network starts again from whatever its nodes kept (`ehr network down`, then `up`)."""

from __future__ import annotations

from pathlib import Path

from tests.network.conftest import start_network

PROGRESS = 60.0


def test_a_network_whose_first_validator_fell_behind_starts_again(tmp_path: Path) -> None:
    with start_network(tmp_path / "net", validators=3) as network:
        behind = network.node("validator-1")
        network.stop([behind.name])  # maintenance on one member's node; two of three seal on
        head = network.wait_for_block(network.head("validator-2") + 3, name="validator-2", timeout=PROGRESS)
        network.stop()
        network.start(timeout=PROGRESS)
        network.wait_for_block(head + 2, name=behind.name, timeout=PROGRESS)
