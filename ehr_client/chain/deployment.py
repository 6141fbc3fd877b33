"""`deployments/<network>.json`: where a deployed suite lives and what it was built from."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ehr_client._files import replace_atomically
from ehr_client._json import load_untrusted
from ehr_client.chain.abi import CONTRACT_NAMES, abi_hash
from ehr_client.errors import ConfigError

SOLC_VERSION = "0.8.28"


@dataclass(frozen=True)
class Deployment:
    """Addresses and provenance of one deployed suite."""

    network: str
    chain_id: int
    deploy_block: int
    deployer: str
    contracts: dict[str, str]
    governors: list[str]
    threshold: int
    compiler: str = f"solc {SOLC_VERSION}"
    abi_hash: str = field(default_factory=abi_hash)
    registry_block_number: int | None = None
    registry_block_hash: str | None = None
    created_by: dict[str, str] = field(default_factory=dict)
    """The transaction that created a contract added later (`ehr claim deploy`), by contract name:
    what lets anyone check it was created with the project's code (`ehr claim check-registry`)."""

    @property
    def registry_block(self) -> tuple[int, str] | None:
        """(number, hash) of the block RecordRegistry was deployed in, when the file records it."""
        if self.registry_block_number is None or self.registry_block_hash is None:
            return None
        return self.registry_block_number, self.registry_block_hash

    def address(self, name: str) -> str:
        try:
            return self.contracts[name]
        except KeyError:
            raise ConfigError(f"deployment for {self.network} has no {name}; redeploy with `ehr deploy`") from None

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(
            {
                "network": data["network"],
                "chainId": data["chain_id"],
                "deployBlock": data["deploy_block"],
                "deployer": data["deployer"],
                "contracts": data["contracts"],
                "governors": data["governors"],
                "threshold": data["threshold"],
                "compiler": data["compiler"],
                "abiHash": data["abi_hash"],
                **({"registryBlock": {"number": data["registry_block_number"], "hash": data["registry_block_hash"]}}
                   if data["registry_block_hash"] else {}),
                **({"createdBy": data["created_by"]} if data["created_by"] else {}),
            },
            indent=2,
        ) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "deployment") -> Deployment:
        try:
            data: dict[str, Any] = load_untrusted(text, max_depth=4, max_bytes=1 << 20)
            deployment = cls(
                network=str(data["network"]),
                chain_id=int(data["chainId"]),
                deploy_block=int(data["deployBlock"]),
                deployer=str(data["deployer"]),
                contracts={str(k): str(v) for k, v in dict(data["contracts"]).items()},
                governors=[str(g) for g in data["governors"]],
                threshold=int(data["threshold"]),
                compiler=str(data["compiler"]),
                abi_hash=str(data["abiHash"]),
                registry_block_number=int(data["registryBlock"]["number"]) if "registryBlock" in data else None,
                registry_block_hash=str(data["registryBlock"]["hash"]) if "registryBlock" in data else None,
                created_by={str(k): str(v) for k, v in dict(data.get("createdBy", {})).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise ConfigError(f"{source} is not a valid deployment file ({exc}); redeploy or restore it") from None
        missing = [name for name in CONTRACT_NAMES if name not in deployment.contracts]
        if missing:
            raise ConfigError(f"{source} lacks {', '.join(missing)}; redeploy with `ehr deploy`")
        return deployment

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"no deployment file at {path}; run `ehr deploy` (or `ape run deploy`) first") from None
        return cls.from_json(text, source=str(path))

    def save(self, path: Path) -> None:
        """Write atomically, so a crash never leaves half a deployment file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, self.to_json().encode())

    def check_client_compatible(self) -> None:
        """Refuse a deployment built from other contract ABIs than this client's."""
        if self.abi_hash != abi_hash():
            raise ConfigError(
                f"deployment on {self.network} was built from other contracts (ABI hash {self.abi_hash[:12]}…, "
                f"this client {abi_hash()[:12]}…); upgrade the client or redeploy"
            )


def deployment_path(network: str, root: Path | None = None) -> Path:
    """`deployments/<network>.json`, with the network's ':' turned into '-' for file names."""
    base = root if root is not None else Path(os.environ.get("EHR_DEPLOYMENTS_DIR", "deployments"))
    return base / f"{network.replace(':', '-')}.json"
