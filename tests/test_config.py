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


SERVE_FLAGS = (
    "--data-dir",
    "--host",
    "--port",
    "--otlp-grpc-port",
    "--otlp-http-port",
    "--zipkin-port",
    "--sample-rate",
    "--decision-wait",
    "--recall-memory-mb",
    "--store",
    "--clickhouse-url",
    "--ingest-token",
    "--query-token",
    "--peers",
    "--advertise",
    "--peers-file",
    "--span-routing",
    "--max-body-bytes",
    "--max-queued-spans",
    "--workers",
    "--max-inflight-bytes",
    "--aggregate-attributes",
    "--owners",
    "--slos",
    "--alert-webhook",
    "--slo-interval",
    "--alert-reexplain",
    "--retention",
    "--rollup-retention",
)


def env_name(flag: str) -> str:
    return "SPYGLASS_" + flag.removeprefix("--").replace("-", "_").upper()


def test_help_lists_every_flag_with_its_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines to the terminal's width
    for flag in SERVE_FLAGS:
        # the flag, its metavar and help, then its variable; no other option's "[" in between
        assert re.search(rf"{flag} \S+ [^\[]*\[env: {env_name(flag)}\]", text), flag
    options = set(re.findall(r"\[(--[a-z-]+)", text))
    assert options == set(SERVE_FLAGS)  # and nothing else: no --decision-wait-s beside --decision-wait


def test_a_flag_wins_over_its_environment_variable(tmp_path: Path) -> None:
    owners, other_owners = tmp_path / "owners.json", tmp_path / "other.json"
    owners.write_text("{}")
    other_owners.write_text("{}")
    env = {"SPYGLASS_PORT": "9000", "SPYGLASS_DECISION_WAIT": "2.5", "SPYGLASS_OWNERS": str(owners)}
    from_env = parse_serve_args([], env=env)
    assert (from_env.port, from_env.decision_wait_s, from_env.owners_file) == (9000, 2.5, owners)
    argv = ["--port", "9100", "--decision-wait", "0.5", "--owners", str(other_owners)]
    from_flags = parse_serve_args(argv, env=env)
    assert (from_flags.port, from_flags.decision_wait_s, from_flags.owners_file) == (9100, 0.5, other_owners)
    # an invalid variable does not matter when its flag is given
    assert parse_serve_args(["--port", "9100"], env={"SPYGLASS_PORT": "eighty"}).port == 9100
    # an empty flag is given: it unsets what the environment says
    assert parse_serve_args(["--ingest-token", ""], env={"SPYGLASS_INGEST_TOKEN": "t"}).ingest_token is None


def test_an_empty_environment_variable_is_unset() -> None:
    env = {env_name(flag): "" for flag in SERVE_FLAGS}
    assert parse_serve_args([], env=env) == parse_serve_args([], env={})


def test_only_upper_case_variables_are_read() -> None:
    assert parse_serve_args([], env={"spyglass_port": "9000"}).port == 8686


def test_lists_are_comma_separated_in_the_environment() -> None:
    env = {
        "SPYGLASS_PEERS": "http://a:8686,http://b:8686/",
        "SPYGLASS_ADVERTISE": "http://b:8686/",
        "SPYGLASS_AGGREGATE_ATTRIBUTES": "tenant.id, plan.tier,",
    }
    config = parse_serve_args([], env=env)
    assert config.peers == ("http://a:8686", "http://b:8686")
    assert config.advertised_url == "http://b:8686"
    assert config.aggregate_attributes == ("tenant.id", "plan.tier")
    assert parse_serve_args(["--peers", "http://c:1", "--advertise", ""], env=env).peers == ("http://c:1",)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--port", "-1", "--port must be in [0, 65535], got -1"),
        ("--otlp-grpc-port", "65536", "--otlp-grpc-port must be in [0, 65535], got 65536"),
        ("--otlp-http-port", "70000", "--otlp-http-port must be in [0, 65535], got 70000"),
        ("--zipkin-port", "-5", "--zipkin-port must be in [0, 65535], got -5"),
        ("--sample-rate", "0", "--sample-rate must be in (0, 1], got 0"),
        ("--sample-rate", "2.0", "--sample-rate must be in (0, 1], got 2.0"),
        ("--decision-wait", "-1", "--decision-wait must be >= 0, got -1"),
        ("--recall-memory-mb", "0", "--recall-memory-mb must be >= 1, got 0"),
        ("--workers", "-1", "--workers must be >= 0, got -1"),
        ("--max-inflight-bytes", "0", "--max-inflight-bytes must be >= 1, got 0"),
        ("--store", "mysql", "--store must be duckdb or clickhouse, got 'mysql'"),
        ("--span-routing", "sideways", "--span-routing must be forward or upstream, got 'sideways'"),
        ("--port", "eighty", "--port='eighty': Input should be a valid integer"),
    ],
)
def test_each_bound_is_refused_naming_the_flag_or_the_variable(flag: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_serve_args([flag, value], env={})
    assert str(refused.value).startswith(message)
    with pytest.raises(ConfigError) as refused:
        parse_serve_args([], env={env_name(flag): value})
    assert str(refused.value).startswith(f"{env_name(flag)}={value!r} is not a valid {flag}")


def test_the_command_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPYGLASS_DECISION_WAIT", "-3")
    assert main(["serve"]) == 2
    assert (
        capsys.readouterr().err
        == "spyglass: SPYGLASS_DECISION_WAIT='-3' is not a valid --decision-wait: must be >= 0\n"
    )
    assert main(["serve", "--decision-wait", "1", "--port", "65536"]) == 2
    assert capsys.readouterr().err == "spyglass: --port must be in [0, 65535], got 65536\n"


def test_flags_are_named_as_before_not_as_fields() -> None:
    with pytest.raises(SystemExit):
        parse_serve_args(["--decision-wait-s", "1"], env={})
    assert parse_serve_args([], env={"SPYGLASS_DECISION_WAIT_S": "1"}).decision_wait_s == 5.0


def test_code_builds_it_with_field_names_and_it_is_validated(tmp_path: Path) -> None:
    owners = tmp_path / "owners.json"
    owners.write_text("{}")
    config = loopback_config(tmp_path, decision_wait_s=0.25, owners_file=owners, peers=("http://a:1/",))
    assert (config.decision_wait_s, config.owners_file, config.peers) == (0.25, owners, ("http://a:1",))
    with pytest.raises(ValueError, match="sample_rate"):
        loopback_config(tmp_path, sample_rate=2.0)
    with pytest.raises(ValueError, match="not in --peers"):
        loopback_config(tmp_path, peers=("http://a:1",), advertise="http://b:1")


def test_slo_flags(tmp_path: Path) -> None:
    slos = tmp_path / "slos.yaml"
    slos.write_text("[]")
    config = parse_serve_args(
        ["--slos", str(slos), "--alert-webhook", "https://hooks.example/alerts"],
        env={"SPYGLASS_SLO_INTERVAL": "5"},
    )
    assert (config.slos_file, config.alert_webhook, config.slo_interval_s) == (
        slos,
        "https://hooks.example/alerts",
        5.0,
    )
    assert parse_serve_args([]).slo_interval_s == 30.0
    with pytest.raises(ConfigError, match="--slos: no such file"):
        parse_serve_args(["--slos", str(tmp_path / "missing.yaml")])
    with pytest.raises(ConfigError, match="--alert-webhook must be an http:// or https:// URL"):
        parse_serve_args(["--alert-webhook", "hooks.example"])
    with pytest.raises(ConfigError, match="--slo-interval must be > 0"):
        parse_serve_args(["--slo-interval", "0"])


def test_a_bad_slo_file_stops_the_start_naming_the_slo_and_field(tmp_path: Path) -> None:
    from spyglass.server import SpyglassServer

    slos = tmp_path / "slos.yaml"
    slos.write_text("- {name: Checkout, service: frontend, operation: POST /checkout, objective: 99}\n")
    with pytest.raises(ConfigError, match=r"--slos: .*SLO #1 \(Checkout\): objective must be in \(0, 1\)"):
        SpyglassServer(loopback_config(tmp_path / "data", slos_file=slos))


def test_retention_takes_durations() -> None:
    default = parse_serve_args([], env={})
    assert (default.retention_s, default.rollup_retention_s) == (7 * 86_400, 90 * 86_400)
    config = parse_serve_args(["--retention", "36h"], env={"SPYGLASS_ROLLUP_RETENTION": "30d"})
    assert (config.retention_s, config.rollup_retention_s) == (36 * 3600, 30 * 86_400)
    assert config.retention_policy.retention_s == 36 * 3600
    for text, seconds in (("90s", 90), ("15m", 900), ("7d", 604_800), ("3600", 3600), ("1.5h", 5400)):
        assert parse_serve_args(["--retention", text], env={}).retention_s == seconds
    with pytest.raises(ConfigError, match=r"--retention='7x'.*number with s, m, h or d"):
        parse_serve_args(["--retention", "7x"], env={})
    with pytest.raises(
        ConfigError, match=r"SPYGLASS_RETENTION='soon' is not a valid --retention: a duration"
    ):
        parse_serve_args([], env={"SPYGLASS_RETENTION": "soon"})
    with pytest.raises(ConfigError, match=r"--rollup-retention must be > 0, got 0"):
        parse_serve_args(["--rollup-retention", "0d"], env={})
