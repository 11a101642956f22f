"""Flags, their SPYGLASS_* environment variables, and validation at start."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from spyglass.cli import main
from spyglass.config import ConfigError, parse_serve_args
from spyglass.server import loopback_config, open_store
from tests.conftest import RunningServer


def test_defaults_bind_loopback() -> None:
    config = parse_serve_args([], env={})
    assert (config.host, config.port, config.otlp_grpc_port, config.otlp_http_port, config.zipkin_port) == (
        "127.0.0.1",
        8686,
        4317,
        4318,
        9411,
    )
    assert config.ingest_token is None and config.query_token is None and config.store == "duckdb"


def test_environment_then_flags() -> None:
    env = {
        "SPYGLASS_SAMPLE_RATE": "0.1",
        "SPYGLASS_PORT": "9000",
        "SPYGLASS_DATA_DIR": "/tmp/x",
        "SPYGLASS_INGEST_TOKEN": "t",
        "SPYGLASS_PEERS": "http://a:1, http://b:2/",
    }
    config = parse_serve_args([], env=env)
    assert (config.sample_rate, config.port, config.data_dir, config.ingest_token) == (
        0.1,
        9000,
        Path("/tmp/x"),
        "t",
    )
    assert config.peers == ("http://a:1", "http://b:2")
    assert parse_serve_args(["--port", "9100"], env=env).port == 9100


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--sample-rate", "0"], {}, "sample-rate"),
        (["--sample-rate", "1.5"], {}, "sample-rate"),
        (["--decision-wait", "-1"], {}, "decision-wait"),
        (["--recall-memory-mb", "0"], {}, "recall-memory-mb"),
        (["--store", "mysql"], {}, "store"),
        (["--store", "clickhouse"], {}, "clickhouse-url"),
        ([], {"SPYGLASS_PORT": "eighty"}, "SPYGLASS_PORT"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_serve_args(argv, env=env)


def test_cli_reports_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--sample-rate", "7"]) == 2
    assert "sample-rate" in capsys.readouterr().err


def test_chdb_without_its_extra_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chdb is an optional extra; tests/test_wheel.py sees the same message from a clean install's CLI."""
    monkeypatch.setitem(
        sys.modules, "chdb", None
    )  # what `import chdb` meets after a plain `pip install spyglass`
    config = loopback_config(tmp_path, store="clickhouse", clickhouse_url=f"chdb://{tmp_path}/ch")
    with pytest.raises(ConfigError, match=re.escape("chdb package: pip install 'spyglass[chdb]'")):
        open_store(config)


def test_extra_aggregated_attributes_reach_the_aggregator(start_server: Callable[..., RunningServer]) -> None:
    config = parse_serve_args(["--aggregate-attributes", "tenant.id, plan.tier"], env={})
    assert config.aggregate_attributes == ("tenant.id", "plan.tier")
    server = start_server(aggregate_attributes=config.aggregate_attributes)
    keys = server.server.satellite.aggregator.attribute_keys
    assert "tenant.id" in keys and "plan.tier" in keys and "service.version" in keys
