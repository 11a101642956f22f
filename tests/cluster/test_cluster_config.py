"""Cluster flags: members from --peers or --peers-file, this satellite among them, routing mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from spyglass.config import ConfigError, parse_serve_args


def test_peers_must_include_this_satellite() -> None:
    peers = "--peers=http://a:8686,http://b:8686"
    assert parse_serve_args([peers, "--advertise", "http://a:8686/"]).advertised_url == "http://a:8686"
    with pytest.raises(ConfigError, match="not in --peers"):
        parse_serve_args([peers, "--advertise", "http://c:8686"])
    with pytest.raises(ConfigError, match="http://"):
        parse_serve_args(["--peers=a:8686", "--advertise=a:8686"])


def test_peers_file_and_span_routing(tmp_path: Path) -> None:
    peers_file = tmp_path / "peers"
    peers_file.write_text("http://a:8686\n")
    config = parse_serve_args(["--peers-file", str(peers_file), "--span-routing", "upstream"])
    assert config.clustered and config.span_routing == "upstream"
    with pytest.raises(ConfigError, match="not both"):
        parse_serve_args(["--peers-file", str(peers_file), "--peers=http://127.0.0.1:8686"])
    with pytest.raises(ConfigError, match="no such file"):
        parse_serve_args(["--peers-file", str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match="forward or upstream"):
        parse_serve_args(["--span-routing", "sideways"])
    assert not parse_serve_args([]).clustered
