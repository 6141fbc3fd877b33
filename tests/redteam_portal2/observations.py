"""Fresh observation files: the client refuses to write again content whose record its patient erased."""

from __future__ import annotations

import json
import secrets
from pathlib import Path


def fresh_observation(template: Path, directory: Path) -> Path:
    data = json.loads(template.read_text())
    data["id"] = "redteam-" + secrets.token_hex(8)
    path = directory / f"observation-{data['id']}.json"
    path.write_text(json.dumps(data))
    return path
