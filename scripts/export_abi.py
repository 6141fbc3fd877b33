"""Write the compiled ABIs and creation bytecode into ehr_client/abi/ (run by `make compile`).

The client ships these files so it can bind and deploy the contracts without Ape or a compiler;
tests/contracts/test_abi_export.py fails when they drift from the contracts.
"""

from pathlib import Path

from ape import project

from ehr_client.chain.abi import ARTIFACT_NAMES, artifact_json

OUT = Path(__file__).resolve().parent.parent / "ehr_client" / "abi"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name in ARTIFACT_NAMES:
        contract_type = getattr(project, name).contract_type
        text = artifact_json(
            name,
            [abi.model_dump(mode="json", by_alias=True) for abi in contract_type.abi],
            contract_type.get_deployment_bytecode().hex() if contract_type.deployment_bytecode else "",
        )
        target = OUT / f"{name}.json"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            print(f"wrote {target.relative_to(OUT.parent.parent)}")


if __name__ == "__main__":
    main()
