"""Peak memory of encrypting and storing a 1 GiB file through the full client path, in its own process.

The file is generated in a temporary folder in 1 MiB writes; a child process runs
`EHRClient.add_record(patient, path, category="genomic")` (plaintext hash, streamed encryption,
streamed store into a LocalStore, anchor). When it has finished, the parent reads the child's
VmHWM from /proc/<pid>/status: the peak resident set of the child's own address space since it
started the interpreter. (The child's `ru_maxrss` from `wait4` is also recorded, but on Linux it
starts from the parent's resident size at the fork before exec, so it says more about the
parent than about the write.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench._encrypt_child import memory_kib
from bench._world import World

CHUNK = 1 << 20
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class MemoryResult:
    size: int
    peak_rss_MiB: float
    rss_before_write_MiB: float
    peak_before_write_MiB: float
    ru_maxrss_MiB: float
    seconds: float


def _generate(path: Path, size: int) -> None:
    block = bytearray(os.urandom(CHUNK))
    with path.open("wb") as handle:
        for i in range(size // CHUNK):
            block[:8] = i.to_bytes(8, "big")
            handle.write(block)


def measure(world: World, *, size: int = 1 << 30) -> MemoryResult:
    patient = world.client("memory_patient", "memory")
    patient.register_patient()
    patient.publish_key()
    scratch = world.scratch("memory")
    source = scratch / "genome.bin"
    _generate(source, size)
    config = scratch / "child.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps({
        "rpc": world.rpc_url, "deployment": patient.chain.deployment.to_json(),
        "wallet": patient.identity.account.key.hex(), "x25519": patient.identity.x25519[1].hex(),
        "store": str(world.root / "store"), "state": str(world.root / "state" / "memory-child"),
        "file": str(source),
    }))
    err = scratch / "child.err"
    start = time.perf_counter()
    with err.open("wb") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "bench._encrypt_child", str(config)], cwd=REPO,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        if child.stdin is None or child.stdout is None:
            raise RuntimeError("the child process has no pipes")
        line = child.stdout.readline()
        seconds = time.perf_counter() - start
        peak = memory_kib(Path(f"/proc/{child.pid}/status")) if line else None
        child.stdin.close()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not every child's
        child.returncode = os.waitstatus_to_exitcode(status)
        child.stdout.close()
    source.unlink()
    if peak is None or child.returncode != 0:
        detail = err.read_text(errors="replace")[-800:]
        raise RuntimeError(f"the large-file write failed (exit {child.returncode}): {detail}")
    before = json.loads(line)["beforeWrite"]
    return MemoryResult(size, peak["VmHWM"] / 1024, before["VmRSS"] / 1024, before["VmHWM"] / 1024,
                        usage.ru_maxrss / 1024, seconds)
