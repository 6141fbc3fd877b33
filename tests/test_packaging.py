"""The package metadata builds without setuptools deprecation banners under the pinned
setuptools and packaging (what `make install` runs: `pip install --no-build-isolation -e .`)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_metadata_builds_without_license_warnings(tmp_path: Path) -> None:
    code = ("import sys\nfrom setuptools import build_meta\n"
            "print(build_meta.prepare_metadata_for_build_editable(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DeprecationWarning" not in done.stderr and "project.license" not in done.stderr, done.stderr
    metadata = (tmp_path / done.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert "License-File: LICENSE" in metadata
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
