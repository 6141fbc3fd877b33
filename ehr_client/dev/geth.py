"""`CliqueNetwork`: a proof-of-authority consortium chain of real geth processes on loopback.

N sealing validators (each its own signing key and data directory) and M non-sealing RPC nodes,
statically peered over 127.0.0.1 only: no discovery, no NAT, --netrestrict 127.0.0.0/8, HTTP
JSON-RPC on 127.0.0.1 with only the APIs the project needs. The binary is geth v1.13.15 (built by
`make geth`, tools/build-geth.sh; `$EHR_GETH_BIN` overrides it), the last geth that seals Clique.

Layout under `root` (kept across stop/start, so the chain survives restarts):

    network.json            chain id, period, and each node's name, kind, address, ports, enode
    genesis.json
    nodes/<name>/           geth's --datadir: keystore/ (validators), geth/nodekey, chaindata
        config.toml         the static peers
        password            0600, the validator's keystore password
        geth.log, geth.pid

Durability: nodes run with `--gcmode archive`, so the state of every imported block is written
with the block; after a kill -9 the node restarts at the head it had acknowledged. With geth's
default (`full`), recent state lives only in memory and a killed node rewinds to an older block
and, if it is the only sealer, re-seals different blocks at the same heights (tests/network).

Sealing: validators start without --mine; `CliqueNetwork.start` calls miner_start once a
validator has caught up with the running nodes (see `start` for the deadlock this avoids).

Every child runs in its own process group. Nodes started without `detach` are stopped when the
interpreter exits; detached ones (`ehr network up`) outlive it and are found again by pidfile.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ehr_client.dev import processes
from ehr_client.dev import _clique_setup as setup
from ehr_client.dev.clique_watch import StallWatch, Supervisor
from ehr_client.dev.rpc import RpcRefused, rpc
from ehr_client.errors import ChainStalled, ChainUnavailable, ConfigError

GETH_BIN_ENV = "EHR_GETH_BIN"
GcMode = Literal["archive", "full"]
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILT_GETH = REPO_ROOT / ".build" / "bin" / "geth"
HTTP_APIS = "eth,net,web3,clique,admin,txpool"
VALIDATOR_APIS = HTTP_APIS + ",miner,debug"  # miner_start: nudge_sealers; debug_setHead: settle_forks
NETWORK_FILE = "network.json"
DEFAULT_CHAIN_ID = 31415
GETH_CACHE_MB = 128  # geth preallocates its write-ahead log from this (1 GiB by default: 144 MB of disk a node)
_MARKER = "geth"
_PR_SET_PDEATHSIG = 1
NodeKind = Literal["validator", "rpc"]


def find_geth_binary() -> Path:
    """`$EHR_GETH_BIN`, else the project's .build/bin/geth, else `geth` on PATH."""
    configured = os.environ.get(GETH_BIN_ENV)
    if configured:
        return Path(configured)
    if BUILT_GETH.exists():
        return BUILT_GETH
    found = shutil.which("geth")
    if found:
        return Path(found)
    raise ConfigError(f"geth not found: run `make geth` (tools/build-geth.sh) or set {GETH_BIN_ENV}")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kind: NodeKind
    address: str | None  # the validator's signing address; None for an RPC node
    node_id: str
    p2p_port: int
    http_port: int
    authrpc_port: int

    @property
    def enode(self) -> str:
        return f"enode://{self.node_id}@127.0.0.1:{self.p2p_port}"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass(frozen=True)
class NodeStatus:
    name: str
    kind: NodeKind
    running: bool
    pid: int | None
    rpc_url: str
    address: str | None
    head: int | None = None
    peers: int | None = None


@dataclass(frozen=True)
class NetworkStatus:
    chain_id: int
    period: int
    nodes: list[NodeStatus]
    signers: list[str] = field(default_factory=list)
    sealers: dict[int, str] = field(default_factory=dict)  # block number -> who sealed it


class GethNode:
    """One geth process over its data directory; `start`, `stop`, `kill` (SIGKILL), `running`."""

    def __init__(self, spec: NodeSpec, datadir: Path, *, chain_id: int, binary: Path, detach: bool,
                 gcmode: GcMode = "archive") -> None:
        self.spec = spec
        self.gcmode = gcmode
        self.datadir = datadir
        self.chain_id = chain_id
        self.binary = binary
        self.detach = detach
        self._process: subprocess.Popen[bytes] | None = None
        self._starting = threading.Lock()  # a supervisor's restart and a caller's start must not both spawn

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rpc_url(self) -> str:
        return self.spec.rpc_url

    @property
    def log_path(self) -> Path:
        return self.datadir / "geth.log"

    @property
    def pid_path(self) -> Path:
        return self.datadir / "geth.pid"

    @property
    def pid(self) -> int | None:
        """The pid of this node's geth if it runs (ours, or a detached one found by its pidfile)."""
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if processes.alive(pid, marker=_MARKER) and self._owns(pid) else None

    def _owns(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc: trust the pidfile and the marker
        return str(self.datadir).encode() in cmdline

    @property
    def running(self) -> bool:
        return self.pid is not None

    def arguments(self) -> list[str]:
        spec = self.spec
        args = [
            str(self.binary), "--datadir", str(self.datadir), "--config", str(self.datadir / "config.toml"),
            "--networkid", str(self.chain_id), "--syncmode", "full", "--gcmode", self.gcmode,
            "--nodiscover", "--netrestrict", "127.0.0.0/8", "--nat", "none",
            "--http", "--http.addr", "127.0.0.1", "--http.port", str(spec.http_port),
            "--http.api", VALIDATOR_APIS if spec.kind == "validator" else HTTP_APIS,
            "--authrpc.addr", "127.0.0.1", "--authrpc.port", str(spec.authrpc_port), "--ipcdisable",
            "--verbosity", "3", "--cache", str(GETH_CACHE_MB),
        ]
        if spec.kind == "validator":
            assert spec.address is not None
            # No --mine: CliqueNetwork.start calls miner_start once the node has caught up.
            args += ["--miner.etherbase", spec.address, "--miner.gasprice", str(setup.MINER_TIP_FLOOR_WEI),
                     "--unlock", spec.address,
                     "--password", str(self.datadir / "password"), "--allow-insecure-unlock"]
        return args

    def start(self, *, timeout: float = 60.0) -> None:
        """Start geth (no-op if it runs) and wait until its JSON-RPC answers."""
        with self._starting:
            self._start(timeout)

    def _start(self, timeout: float) -> None:
        if self.running:
            return
        deadline = time.monotonic() + timeout
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            def spawn() -> subprocess.Popen[bytes]:
                return subprocess.Popen(self.arguments(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=None if self.detach else _end_with_parent)
            process = spawn() if self.detach else _SPAWNER.submit(spawn).result()
        self._process = process
        self.pid_path.write_text(f"{self._process.pid}\n")
        if not self.detach:
            atexit.register(self._stop_at_exit, self._process)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ChainUnavailable(f"geth node {self.name} exited with code {self._process.returncode} at "
                                       f"start: {self._log_tail()}; see {self.log_path}")
            try:
                rpc(self.rpc_url, "eth_blockNumber", timeout=1.0)
                if self._unlocked(log_offset):
                    return
            except ChainUnavailable:
                pass
            time.sleep(0.1)
        self.stop()
        raise ChainUnavailable(f"geth node {self.name} did not answer JSON-RPC within {timeout:.0f}s; "
                               f"see {self.log_path}")

    def _unlocked(self, log_offset: int) -> bool:
        """A validator seals only once geth has unlocked its key (after JSON-RPC is up)."""
        if self.spec.address is None:
            return True
        with self.log_path.open("rb") as log:
            log.seek(log_offset)
            return f"Unlocked account                         address={self.spec.address}".encode() in log.read()

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        fatal = [line for line in lines if "Fatal" in line or "error" in line.lower()]
        return (fatal or lines or ["empty log"])[-1][:300]

    @staticmethod
    def _stop_at_exit(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            processes.stop_group(process.pid, timeout=20)

    def stop(self, *, timeout: float = 30.0) -> None:
        """SIGTERM (geth flushes its caches and closes the database), SIGKILL after `timeout`."""
        pid = self.pid
        if pid is not None:
            processes.stop_group(pid, timeout=timeout)
        self._forget()

    def kill(self) -> None:
        """SIGKILL the node's process group: a crash, nothing flushed (for durability tests)."""
        pid = self.pid
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while processes.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self._forget()

    def _forget(self) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise ChainUnavailable(f"geth node {self.name} (pid {self._process.pid}) would not exit") from None
        self._process = None
        self.pid_path.unlink(missing_ok=True)

    def status(self) -> NodeStatus:
        pid = self.pid
        head = peers = None
        if pid is not None:
            try:
                head = int(rpc(self.rpc_url, "eth_blockNumber", timeout=2.0), 16)
                peers = int(rpc(self.rpc_url, "net_peerCount", timeout=2.0), 16)
            except ChainUnavailable:
                pass
        return NodeStatus(self.name, self.spec.kind, pid is not None, pid, self.rpc_url, self.spec.address,
                          head, peers)


class CliqueNetwork:
    """`create` a network under a folder or `open` an existing one; `start`, `stop`, `status`."""

    def __init__(self, root: Path, *, binary: Path | None = None, detach: bool = False) -> None:
        self.root = Path(root)
        try:
            described = json.loads((self.root / NETWORK_FILE).read_text())
            self.chain_id = int(described["chain_id"])
            self.period = int(described["period"])
            self.gcmode: GcMode = "full" if described.get("gcmode") == "full" else "archive"
            specs = [NodeSpec(**node) for node in described["nodes"]]
        except FileNotFoundError:
            raise ConfigError(f"no network under {self.root}: create one (`ehr network up`)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.root / NETWORK_FILE} is unreadable ({type(exc).__name__}); "
                              "remove the folder and create the network again") from None
        self.binary = binary or find_geth_binary()
        self.nodes = {spec.name: GethNode(spec, self.root / "nodes" / spec.name, chain_id=self.chain_id,
                                          binary=self.binary, detach=detach, gcmode=self.gcmode)
                      for spec in specs}

    @classmethod
    def create(cls, root: Path, *, validators: int, rpc_nodes: int = 0, period: int = 1, epoch: int = 30_000,
               chain_id: int = DEFAULT_CHAIN_ID, alloc: Mapping[str, int] | None = None,
               binary: Path | None = None, detach: bool = False, gcmode: GcMode = "archive") -> CliqueNetwork:
        """Write keys, genesis and configs and `geth init` every node; the folder appears complete or not at all.

        `gcmode="full"` (geth's default, state flushed only on clean shutdown) exists to show what
        `archive` protects against; do not use it for a chain you keep.
        """
        if validators < 1 or rpc_nodes < 0 or period < 1:
            raise ConfigError("a network needs at least one validator, no negative RPC nodes, and a period >= 1 s")
        root = Path(root)
        if root.exists():
            raise ConfigError(f"{root} already exists: open it, or remove it to start a new chain")
        binary = binary or find_geth_binary()
        root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        building = Path(tempfile.mkdtemp(prefix=f".{root.name}.creating-", dir=root.parent))
        try:
            specs = cls._write_nodes(building, validators=validators, rpc_nodes=rpc_nodes)
            signers = [s.address for s in specs if s.address is not None]
            funded = {**{address: 10**24 for address in signers}, **dict(alloc or {})}
            genesis = setup.genesis(chain_id=chain_id, period=period, epoch=epoch, signers=signers, alloc=funded)
            (building / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
            for spec in specs:
                datadir = building / "nodes" / spec.name
                peers = [other.enode for other in specs if other.name != spec.name]
                (datadir / "config.toml").write_text(setup.node_config_toml(spec.p2p_port, peers))
                _geth_init(binary, datadir, building / "genesis.json")
            described = {"chain_id": chain_id, "period": period, "epoch": epoch, "gcmode": gcmode,
                         "nodes": [asdict(spec) for spec in specs]}
            (building / NETWORK_FILE).write_text(json.dumps(described, indent=2) + "\n")
            # geth init wrote absolute paths nowhere but the datadir flag, so the folder can move.
            os.rename(building, root)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return cls(root, binary=binary, detach=detach)

    @staticmethod
    def _write_nodes(root: Path, *, validators: int, rpc_nodes: int) -> list[NodeSpec]:
        specs: list[NodeSpec] = []
        taken: set[int] = set()

        def port() -> int:
            while (chosen := setup.free_port()) in taken:
                pass
            taken.add(chosen)
            return chosen

        kinds: list[tuple[str, NodeKind]] = [(f"validator-{i + 1}", "validator") for i in range(validators)]
        kinds += [(f"rpc-{i + 1}", "rpc") for i in range(rpc_nodes)]
        for name, kind in kinds:
            datadir = root / "nodes" / name
            datadir.mkdir(parents=True, mode=0o700)
            address = setup.new_validator_key(datadir, datadir / "password") if kind == "validator" else None
            specs.append(NodeSpec(name, kind, address, setup.new_node_key(datadir), port(), port(), port()))
        return specs

    def __enter__(self) -> CliqueNetwork:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @contextmanager
    def supervised(self, *, interval: float | None = None) -> Iterator[Supervisor]:
        """Run a `Supervisor` (ehr_client.dev.clique_watch) for the `with` block."""
        supervisor = Supervisor(self, interval=interval).start()
        try:
            yield supervisor
        finally:
            supervisor.stop()

    @property
    def validators(self) -> list[GethNode]:
        return [node for node in self.nodes.values() if node.spec.kind == "validator"]

    @property
    def rpc_nodes(self) -> list[GethNode]:
        return [node for node in self.nodes.values() if node.spec.kind == "rpc"]

    def node(self, name: str) -> GethNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise ConfigError(f"no node {name!r}; nodes: {', '.join(self.nodes)}") from None

    def rpc_url(self) -> str:
        """The URL clients should use: the first RPC node's, else the first validator's."""
        return (self.rpc_nodes or self.validators)[0].rpc_url

    def _select(self, names: Iterable[str] | None) -> list[GethNode]:
        return list(self.nodes.values()) if names is None else [self.node(name) for name in names]

    def start(self, names: Iterable[str] | None = None, *, timeout: float = 60.0,
              deadline: float | None = None) -> None:
        """Start the nodes; a validator begins sealing only once it has the head the running nodes have.

        A validator that seals on its stale head as soon as it starts (or, on a cold start, before it
        has peers) makes a competing block at a height the others already filled. With equal difficulty each node keeps its own block, and
        Clique deadlocks when every live signer is barred ("signed recently") on its own fork but
        allowed on another's: seen here with 3 of 4 validators, for good.

        `timeout` bounds each node's start, then the rest; a `deadline` (time.monotonic) bounds it all.
        """
        selected = [node for node in self._select(names) if not node.running]
        joining = any(node.running for node in self.nodes.values())  # else a cold start: nobody to catch up with
        for node in selected:
            node.start(timeout=timeout if deadline is None else max(1.0, deadline - time.monotonic()))
        if deadline is None:
            deadline = time.monotonic() + timeout
        if not joining:
            # Sealing before the static peers connect gives each validator a block 1 of its own.
            self.wait_for_peers(timeout=max(1.0, deadline - time.monotonic()))
            self._seal_one_block_first(selected, deadline)
        for node in selected:
            if node.spec.kind == "validator":
                if joining:
                    self._catch_up(node, deadline)
                rpc(node.rpc_url, "miner_start")

    def _seal_one_block_first(self, selected: list[GethNode], deadline: float) -> None:
        """On a cold start, one validator seals the next block alone, and the others start sealing
        only once every node holds that block.

        geth discards the blocks its peers announce until it has synced once or its miner runs.
        Validators started one after another therefore missed the first one's block and sealed
        their own on the old head: a CI run got two blocks 1 and two blocks 2, forks of equal
        weight on each of which its sealers had "signed recently", and no block came again. A
        fresh handshake tells every node the new block's weight, and geth syncs it (within its
        10 s sync cycle); a synced node takes announced blocks from then on.
        """
        validators = [node for node in selected if node.spec.kind == "validator"]
        if not validators:
            return
        heads = {node.name: self.head(node.name) for node in self.nodes.values() if node.running}
        top = max(heads.values())
        first = self._free_sealer([node for node in validators if heads[node.name] == top], top)
        if first is None:
            return  # every validator at the head signed recently: only the others' blocks can move it
        rpc(first.rpc_url, "miner_start")
        block = self._block_at(first, top + 1, deadline)
        self.reconnect_peers()
        self.wait_for_peers(timeout=max(1.0, deadline - time.monotonic()))
        for node in self.nodes.values():
            if node.running and node is not first:
                self._block_at(node, top + 1, deadline, expected=block)

    def _free_sealer(self, candidates: list[GethNode], head: int) -> GethNode | None:
        """The candidate Clique lets seal block `head + 1` on its own chain, the in-turn signer if one is.

        Each candidate is asked about its own chain: candidates at the same height may sit on
        different forks, and another node may not hold these blocks at all.
        """
        free, in_turn = [], []
        for node in candidates:
            address = (node.spec.address or "").lower()
            signers = [str(signer).lower() for signer in rpc(node.rpc_url, "clique_getSigners", None)]
            recent = {str(rpc(node.rpc_url, "clique_getSigner", hex(number))).lower()
                      for number in range(max(1, head - len(signers) // 2 + 1), head + 1)}
            if address in signers and address not in recent:
                free.append(node)
                if signers[(head + 1) % len(signers)] == address:
                    in_turn.append(node)
        return in_turn[0] if in_turn else (free[0] if free else None)

    def _block_at(self, node: GethNode, number: int, deadline: float, *, expected: str | None = None) -> str:
        """Wait until `node` holds a block at `number` (the one hashed `expected`, if given); its hash."""
        while True:
            block = rpc(node.rpc_url, "eth_getBlockByNumber", hex(number), False)
            if block is not None and expected in (None, block["hash"]):
                return str(block["hash"])
            if time.monotonic() >= deadline:
                raise ChainStalled(f"{node.name} does not hold block {number}{' ' + expected if expected else ''} "
                                   f"on a cold start; see {node.log_path}. Nodes: {self.heads_report()}")
            time.sleep(0.1)

    def _catch_up(self, node: GethNode, deadline: float) -> None:
        """Wait until `node` has the head of the nodes that ran before it (geth syncs a node that
        is behind within its 10 s sync cycle; a node level with the others needs nothing)."""
        while True:
            others = [int(rpc(o.rpc_url, "eth_blockNumber"), 16)
                      for o in self.nodes.values() if o is not node and o.running]
            own = int(rpc(node.rpc_url, "eth_blockNumber"), 16)
            if own >= max(others, default=0):
                return
            if time.monotonic() >= deadline:
                raise ChainStalled(f"{node.name} is at block {own}, the others at {max(others)}: it did not catch up "
                                   f"in time, so it does not seal; check its peers (`ehr network status`, "
                                   f"{node.log_path})")
            time.sleep(0.2)

    def stop(self, names: Iterable[str] | None = None, *, timeout: float = 30.0) -> None:
        for node in self._select(names):
            node.stop(timeout=timeout)

    def restart(self, name: str, *, timeout: float = 60.0) -> None:
        self.node(name).stop()
        self.start([name], timeout=timeout)

    def head(self, name: str | None = None) -> int:
        return int(rpc(self._any_running(name).rpc_url, "eth_blockNumber"), 16)

    def _any_running(self, name: str | None) -> GethNode:
        if name is not None:
            return self.node(name)
        for node in self.nodes.values():
            if node.running:
                return node
        raise ChainUnavailable(f"no node of the network under {self.root} runs; `ehr network up`")

    def nudge_sealers(self) -> None:
        """Make every running validator start a new sealing round: `miner_stop`, then `miner_start`
        (geth ignores a start while it mines, so the stop is needed).

        geth 1.13's miner starts a round on a new head, or on its 2 s timer only when new
        transactions arrived. After an equal-height reorg we saw the one validator allowed to seal
        next start no round, and the chain stood still until a new transaction came. Production
        networks see transactions; idle test chains get this nudge.
        """
        for node in self.validators:
            if not node.running:
                continue
            try:
                rpc(node.rpc_url, "miner_stop", timeout=2.0)
                deadline = time.monotonic() + 5
                while rpc(node.rpc_url, "eth_mining", timeout=2.0) and time.monotonic() < deadline:
                    time.sleep(0.05)
                rpc(node.rpc_url, "miner_start", timeout=2.0)
            except (ChainUnavailable, RpcRefused):
                continue  # a hung validator must not keep the others from sealing

    def reconnect_peers(self) -> None:
        """Drop and re-add every running node's static peers, so each handshake carries the peer's
        current total difficulty.

        geth learns a peer's difficulty from the handshake and from the *parent* of each block the
        peer announces, and a node still at genesis discards announced blocks until it has synced.
        Nodes that each sealed a block 1 of their own can therefore wait on each other for good; a
        fresh handshake lets the lighter ones sync to the heaviest fork.

        A link comes back at once only if one of its two ends last dialled the other over 35 s ago
        (geth's dial history); otherwise both ends stay apart until that time is up. Callers wait
        for the peers (`wait_for_peers`) and never repeat it within that time.
        """
        running = [node for node in self.nodes.values() if node.running]
        for method in ("admin_removePeer", "admin_addPeer"):
            for node in running:
                for other in running:
                    if other is not node:
                        try:
                            rpc(node.rpc_url, method, other.spec.enode, timeout=2.0)
                        except (ChainUnavailable, RpcRefused):
                            break  # a hung node: the others still reconnect among themselves

    def wait_for_block(self, number: int, *, name: str | None = None, timeout: float = 30.0) -> int:
        """Wait until `name`'s (or any running node's) head reaches `number`; ChainStalled after `timeout`.

        A head that stands still gets the validators off the heaviest fork settled onto it and the
        sealers nudged (`clique_watch.StallWatch`).
        """
        deadline = time.monotonic() + timeout
        head, stall = -1, StallWatch(self)
        while True:
            try:
                head = self.head(name)
                stall.observe(head)
            except ChainUnavailable:
                if time.monotonic() >= deadline:
                    raise
            if head >= number:
                return head
            if time.monotonic() >= deadline:
                raise ChainStalled(f"the chain is at block {head}, not {number}, after {timeout:.0f}s: too few "
                                   "validators are sealing (Clique needs more than half); start stopped ones. "
                                   f"Nodes: {self.heads_report()}")
            time.sleep(0.1)

    def heads_report(self) -> str:
        """Each running node's head (number, hash prefix, total difficulty), peer count, whether it
        mines, and who sealed its last blocks (Clique's "signed recently" window), for a stall's log."""
        parts = []
        for node in self.nodes.values():
            if not node.running:
                parts.append(f"{node.name} stopped")
                continue
            try:
                block = rpc(node.rpc_url, "eth_getBlockByNumber", "latest", False, timeout=2.0)
                peers = int(rpc(node.rpc_url, "net_peerCount", timeout=2.0), 16)
                number = int(block["number"], 16)
                part = f"{node.name} #{number} {block['hash'][:10]} td {int(block['totalDifficulty'], 16)} {peers} peers"
                if node.spec.kind == "validator":
                    sealers = [str(rpc(node.rpc_url, "clique_getSigner", hex(n), timeout=2.0))[:6]
                               for n in range(max(1, number - 2), number + 1)]
                    mining = rpc(node.rpc_url, "eth_mining", timeout=2.0)
                    part += f" {'mining' if mining else 'idle'} sealers {','.join(sealers)}"
                parts.append(part)
            except (ChainUnavailable, RpcRefused, KeyError, TypeError):
                parts.append(f"{node.name} not answering")
        return "; ".join(parts)

    def wait_for_peers(self, *, timeout: float = 30.0) -> None:
        """Wait until every running node sees every other running node."""
        deadline = time.monotonic() + timeout
        while True:
            running = [node for node in self.nodes.values() if node.running]
            counts = {node.name: int(rpc(node.rpc_url, "net_peerCount"), 16) for node in running}
            if all(count >= len(running) - 1 for count in counts.values()):
                return
            if time.monotonic() >= deadline:
                raise ChainUnavailable(f"nodes did not peer within {timeout:.0f}s (peer counts {counts}); "
                                       "check the p2p ports in their geth.log")
            time.sleep(0.2)

    def wait_for_sync(self, *, timeout: float = 60.0) -> int:
        """Wait until every running node is within one block of the others (a restarted node has
        caught up); return the lowest head. ChainStalled after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            heads = {node.name: int(rpc(node.rpc_url, "eth_blockNumber"), 16)
                     for node in self.nodes.values() if node.running}
            if heads and max(heads.values()) - min(heads.values()) <= 1:
                return min(heads.values())
            if time.monotonic() >= deadline:
                raise ChainStalled(f"nodes did not catch up with each other within {timeout:.0f}s (heads {heads}); "
                                   "see their geth.log")
            time.sleep(0.2)

    def signers(self, name: str | None = None) -> list[str]:
        return [str(s) for s in rpc(self._any_running(name).rpc_url, "clique_getSigners", None)]

    def sealer(self, number: int, name: str | None = None) -> str:
        return str(rpc(self._any_running(name).rpc_url, "clique_getSigner", hex(number)))

    def status(self, *, last_blocks: int = 8) -> NetworkStatus:
        nodes = [node.status() for node in self.nodes.values()]
        signers: list[str] = []
        sealers: dict[int, str] = {}
        live = [n for n in nodes if n.head is not None]
        if live:
            source = max(live, key=lambda n: n.head or 0)
            try:
                signers = self.signers(source.name)
                assert source.head is not None
                for number in range(max(1, source.head - last_blocks + 1), source.head + 1):
                    sealers[number] = self.sealer(number, source.name)
            except (ChainUnavailable, RpcRefused):
                pass
        return NetworkStatus(self.chain_id, self.period, nodes, signers, sealers)


# Linux sends the parent-death signal when the *thread* that forked the child ends, so a node
# started from a short-lived thread (a supervisor restarting a validator) died with that thread.
# Every attached node is forked by this one worker, which lives as long as the process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geth-spawner")


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM it when its parent dies, even by SIGKILL, where atexit never runs."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _geth_init(binary: Path, datadir: Path, genesis: Path) -> None:
    try:
        done = subprocess.run([str(binary), "init", "--datadir", str(datadir), str(genesis)],
                              capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise ChainUnavailable(f"`geth init` did not finish within 60s for {datadir}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:]
        raise ConfigError(f"`geth init` refused the genesis for {datadir.name}: {' '.join(tail)}")
