"""The ABIs and bytecode the client ships must be exactly what the contracts compile to."""

import pytest

from ehr_client.chain.abi import ARTIFACT_NAMES, artifact_json, load_artifact


@pytest.mark.parametrize("name", ARTIFACT_NAMES)
def test_shipped_artifact_matches_compiled_contract(project, name):
    contract_type = getattr(project, name).contract_type
    expected = artifact_json(
        name,
        [abi.model_dump(mode="json", by_alias=True) for abi in contract_type.abi],
        contract_type.get_deployment_bytecode().hex(),
    )
    shipped = artifact_json(name, load_artifact(name)["abi"], load_artifact(name)["bytecode"])
    assert shipped == expected, f"ehr_client/abi/{name}.json is stale: run `make compile` and commit it"
