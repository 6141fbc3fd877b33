"""The storage node configuration file: loading, defaults, and a clear ConfigError for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehr_client.errors import ConfigError
from ehr_client.storage.fragmented import FragmentedStore
from ehr_client.storage.ipfs import IpfsStore
from ehr_client.storage.local import LocalStore
from ehr_client.storage.nodes import CONFIG_ENV, load_storage_config, storage_config_path

GOOD = """
k = 2
n = 3
segment_size = 4096
timeout = 5

[[nodes]]
id = "kubo-a"
kind = "ipfs"
url = "http://127.0.0.1:5001"
retries = 3

[[nodes]]
id = "disk-b"
kind = "local"
path = "fragments/b"

[[nodes]]
id = "disk-c"
kind = "local"
path = "ABSOLUTE"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ehr-storage.toml"
    path.write_text(text)
    return path


def test_config_file_builds_a_fragmented_store(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "c"
    config = load_storage_config(_write(tmp_path, GOOD.replace("ABSOLUTE", str(absolute))))
    assert (config.k, config.n, config.segment_size) == (2, 3, 4096)
    kubo, disk_b, disk_c = config.nodes
    assert (kubo.kind, kubo.url, kubo.timeout, kubo.retries) == ("ipfs", "http://127.0.0.1:5001", 5.0, 3)
    assert disk_b.path == tmp_path / "fragments" / "b"
    assert disk_c.path == absolute
    with FragmentedStore.from_config(config) as store:
        assert (store.k, store.n, store.segment_size) == (2, 3, 4096)
        assert isinstance(store.nodes["kubo-a"], IpfsStore) and isinstance(store.nodes["disk-b"], LocalStore)


def test_config_path_prefers_option_then_environment_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert storage_config_path(home=tmp_path) == tmp_path / "ehr-storage.toml"
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "env.toml"))
    assert storage_config_path(home=tmp_path) == tmp_path / "env.toml"
    assert storage_config_path(explicit=tmp_path / "cli.toml", home=tmp_path) == tmp_path / "cli.toml"


def _nodes(count: int, **extra: str) -> str:
    lines = []
    for i in range(count):
        lines += ["[[nodes]]", f'id = "n{i}"', 'kind = "local"', f'path = "n{i}"']
        lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("k = 3\nn = [", "not valid TOML"),
        ("n = 3\n" + _nodes(3), "k is missing"),
        ("k = 4\nn = 3\n" + _nodes(3), "must not exceed n"),
        ("k = true\nn = 3\n" + _nodes(3), "k must be an integer"),
        ("k = 2\nn = 300\n" + _nodes(3), "n must be an integer from 1 to 256"),
        ("k = 2\nn = 5\n" + _nodes(3), "at least 5 nodes"),
        ("k = 2\nn = 3\n", "list the storage nodes"),
        ("k = 2\nn = 3\nsegment_size = 4097\n" + _nodes(3), "not a multiple of k"),
        ("k = 2\nn = 3\ntimeout = 0\n" + _nodes(3), "timeout must be a number"),
        ("k = 2\nn = 3\nreplicas = 2\n" + _nodes(3), "unknown setting(s) ['replicas']"),
        ("k = 2\nn = 3\n" + _nodes(3, url='"http://x"'), "unknown setting(s) ['url'] for a local node"),
        ("k = 2\nn = 3\n" + _nodes(2) + '\n[[nodes]]\nid = "n0"\nkind = "local"\npath = "x"', "appear more than once"),
        ("k = 1\nn = 1\n[[nodes]]\nid = \"a b\"\nkind = \"local\"\npath = \"x\"", "id must be 1-64"),
        ("k = 1\nn = 1\n[[nodes]]\nid = \"a\"\nkind = \"s3\"\npath = \"x\"", "kind must be 'ipfs' or 'local'"),
        ("k = 1\nn = 1\n[[nodes]]\nid = \"a\"\nkind = \"ipfs\"", "needs url"),
        ("k = 1\nn = 1\n[[nodes]]\nid = \"a\"\nkind = \"ipfs\"\nurl = \"ftp://x\"", "invalid IPFS API URL"),
        ("k = 1\nn = 1\n[[nodes]]\nid = \"a\"\nkind = \"local\"", "needs path"),
    ],
)
def test_config_mistake_raises_config_error_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_storage_config(path)
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_config_file_says_how_to_provide_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"no storage node configuration at .*{CONFIG_ENV}"):
        load_storage_config(tmp_path / "absent.toml")
