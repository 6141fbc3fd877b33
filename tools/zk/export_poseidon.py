"""Write ehr_client/claims/poseidon_t9.json from circomlibjs' constants (8 inputs, as the circuit uses).

Run after changing the circomlibjs pin; tests/claims/test_poseidon.py checks the result against
circomlibjs itself.
"""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
T = 9

data = json.loads((ROOT / "node_modules/circomlibjs/src/poseidon_constants.json").read_text())
out = {"t": T, "C": data["C"][T - 2], "M": data["M"][T - 2]}
(ROOT / "ehr_client/claims/poseidon_t9.json").write_text(json.dumps(out, indent=0) + "\n")
