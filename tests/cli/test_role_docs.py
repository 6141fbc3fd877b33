"""The per-role pages under docs/ run as written. Each page shows one role's commands; what the
other roles must have done first (a deployment, an admission, a grant) is set up here, with
explicit --wallet, before the page's blocks or between them, all in one shell against a fresh
home and a local Anvil that is stopped at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.docrunner import ROOT, clean_env, run_page, sh_blocks, stop_nodes

pytestmark = pytest.mark.slow  # about a minute a page: real `ehr` processes against a real Anvil

HOME = 'export EHR_HOME=$(mktemp -d) EHR_PASSWORD=correct-horse\n'
CONSORTIUM = """
ehr node up
for w in admin lab doctor; do ehr --wallet $w keys new; done
ehr node fund admin lab doctor
ehr --wallet admin deploy
ehr --wallet admin consortium propose admit lab --role lab --execute
ehr --wallet admin consortium propose admit doctor --role provider --execute
ehr --wallet lab keys publish; ehr --wallet doctor keys publish
"""


@dataclass(frozen=True)
class Page:
    before: str
    between: dict[int, str] = field(default_factory=dict)  # run after block i
    after: str = "ehr node down\n"


PAGES = {
    "patient.md": Page(before=CONSORTIUM),
    "provider.md": Page(
        before="""
ehr node up
for w in admin patient doctor; do ehr --wallet $w keys new; done
ehr node fund admin patient doctor
ehr --wallet admin deploy
ehr --wallet admin consortium propose admit doctor --role provider --execute
ehr --wallet doctor keys publish
ehr --wallet patient patient register
""",
        between={
            0: """
ehr --wallet admin consortium propose admit lab --role lab --execute
ehr node fund lab
ehr --wallet patient grant lab --scopes lab --access amend --for 1h
""",
            2: "ehr --wallet patient grant doctor --scopes lab --for 24h --sign-only --out consent.json\n",
            3: "CID=$(ehr --wallet patient share doctor --scopes lab --json | python3 -c "
               "'import json, sys; print(json.load(sys.stdin)[\"keyShare\"])')\n",
        }),
    "consortium-operator.md": Page(before="ehr --wallet lab keys new; ehr --wallet auditor keys new\n", after=""),
    "auditor.md": Page(before=CONSORTIUM + """
ehr --wallet patient keys new; ehr node fund patient
ehr --wallet patient patient register
ehr --wallet patient grant lab --scopes lab --access amend --for 1h
RECORD=$(ehr --wallet lab record add patient examples/glucose.json --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["recordId"])')
ehr --wallet patient grant doctor --scopes lab --for 1h --sign-only --out consent.json
ehr --wallet lab relay consent.json
ehr --wallet doctor record get $RECORD --key-share $(ehr --wallet patient share doctor --scopes lab --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["keyShare"])') > /dev/null
ehr --wallet patient revoke doctor
"""),
}


def test_every_page_is_tested_or_said_not_to_be() -> None:
    # serve runs until stopped; MFA needs live TOTP codes; claims.md is a format page (tested as vectors
    # in tests/claims/test_encoding.py); FORMAT.md likewise (tests/portal_format)
    untested = {"README.md", "custodian-operator.md", "claims.md", "FORMAT.md"}
    assert {p.name for p in (ROOT / "docs").glob("*.md")} == set(PAGES) | untested


@pytest.mark.parametrize("name", list(PAGES))
def test_role_page_runs_as_written(name: str, tmp_path: Path) -> None:
    page = PAGES[name]
    blocks = sh_blocks((ROOT / "docs" / name).read_text())
    assert blocks, f"docs/{name} has no sh block"
    script = HOME + page.before
    for index, block in enumerate(blocks):
        script += block + page.between.get(index, "")
    script += page.after
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = clean_env(tmp)
    try:
        done = run_page(script, work=tmp_path / "work", env=env)
    finally:
        left_running = stop_nodes(tmp, env)
    assert done.returncode == 0, f"docs/{name} failed:\n{done.stderr[-4000:]}"
    assert left_running == []
