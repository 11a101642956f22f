"""spyglass's configuration: one frozen object, built once from flags and ``SPYGLASS_*`` variables, validated.

Each setting is declared once, as a field of ``ServeConfig`` (type, default, bounds, help); pydantic-settings
derives its flag and its environment variable from the field's name, or from its ``validation_alias`` where the
flag is named otherwise (``decision_wait_s`` is ``--decision-wait`` and ``SPYGLASS_DECISION_WAIT``). No other
module reads the environment; everything is passed down from here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

from annotated_types import Ge, Gt, Le, Lt
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, CliSettingsSource, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars
from typing_extensions import TypeAliasType

from spyglass.model.retention import DAY_S, RetentionPolicy, parse_duration


class ConfigError(ValueError):
    """A flag or environment value is invalid; the message says which and why."""


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _duration_s(value: object) -> object:
    """``7d``, ``36h``, ``15m``, ``90s`` or a bare number of seconds, as whole seconds."""
    if isinstance(value, str):
        return parse_duration(value)
    return value


_Port = Annotated[int, Field(ge=0, le=65535)]
#: A duration in whole seconds, written with a unit on the command line and in the environment (``--help``
#: names it by the alias).
DURATION = TypeAliasType("DURATION", Annotated[int, BeforeValidator(_duration_s)])
#: ``a,b,c`` on the command line and in the environment alike (not JSON), blanks dropped; ``--help`` names it
#: by the alias.
LIST = TypeAliasType("LIST", Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_separated)])


# validate_by_name: code builds it with field names (``replace(config, decision_wait_s=0.2)``); validate_by_alias:
# the flags and environment give ``decision_wait``.
@dataclass(frozen=True, config=ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True))
class ServeConfig:
    """Everything ``spyglass serve`` needs to start; validated when built."""

    data_dir: Path = Field(
        default=Path("./spyglass-data"), description="where the embedded store keeps its files"
    )
    host: str = Field(
        default="127.0.0.1", description="interface to listen on; loopback unless you choose otherwise"
    )
    port: _Port = Field(default=8686, description="query API and web UI port")
    otlp_grpc_port: _Port = Field(default=4317, description="OTLP/gRPC ingest port")
    otlp_http_port: _Port = Field(default=4318, description="OTLP/HTTP ingest port")
    zipkin_port: _Port = Field(default=9411, description="Zipkin v2 ingest port")
    sample_rate: float = Field(
        default=1.0, gt=0, le=1, description="target fraction of traces kept in the store"
    )
    decision_wait_s: float = Field(
        default=5.0,
        ge=0,
        validation_alias="decision_wait",
        description="seconds of quiet before a trace is decided",
    )
    recall_memory_mb: int = Field(default=256, ge=1, description="memory bound of the recall buffer")
    store: Literal["duckdb", "clickhouse"] = Field(
        default="duckdb", description="duckdb (embedded) or clickhouse"
    )
    clickhouse_url: str | None = Field(default=None, description="ClickHouse URL for --store clickhouse")
    ingest_token: str | None = Field(default=None, description="bearer token receivers require")
    query_token: str | None = Field(default=None, description="bearer token the API requires")
    peers: LIST = Field(
        default=(), description="query API URLs of every satellite of the cluster, comma-separated"
    )
    advertise: str | None = Field(default=None, description="this satellite's URL as written in --peers")
    #: A file listing the members (one URL a line), re-read when it changes; instead of ``peers``.
    peers_file: Path | None = Field(
        default=None, description="file listing the cluster's members, one URL a line; re-read on change"
    )
    #: ``forward``: satellites send spans to their trace's owner; ``upstream``: something in front (Collectors'
    #: load-balancing exporter) already sends each trace to one satellite, so spans stay where they arrive.
    span_routing: Literal["forward", "upstream"] = Field(
        default="forward", description="forward (to each trace's owner) or upstream"
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, description="largest accepted request body, after gzip"
    )
    max_queued_spans: int = Field(default=200_000, description="intake bound before refusing with 429")
    workers: int = Field(
        default=0,
        ge=0,
        description="processes that decode exports in parallel (1: a thread of the server); 0: one per core",
    )
    max_inflight_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="bytes of export bodies each receiver holds in flight before refusing with 429",
    )
    owners_file: Path | None = Field(
        default=None,
        validation_alias="owners",
        description='JSON file {"service": "team"} naming owners explain reports',
    )
    aggregate_attributes: LIST = Field(
        default=(), description="extra attribute keys to roll up per value, comma-separated"
    )
    slos_file: Path | None = Field(
        default=None,
        validation_alias="slos",
        description="YAML or JSON file listing the SLOs to watch (read-only through the API)",
    )
    alert_webhook: str | None = Field(
        default=None, description="URL alerts are POSTed to as JSON when they fire and resolve"
    )
    slo_interval_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias="slo_interval",
        description="seconds between two evaluations of every SLO",
    )
    alert_reexplain_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias="alert_reexplain",
        description="seconds between two explanations of a firing alert's burn, on what arrived since",
    )
    retention_s: DURATION = Field(
        default=7 * DAY_S,
        gt=0,
        validation_alias="retention",
        description="traces and logs older than this are deleted and their space reused: seconds, or a number "
        "with s, m, h or d (90s, 15m, 36h, 7d)",
    )
    rollup_retention_s: DURATION = Field(
        default=90 * DAY_S,
        gt=0,
        validation_alias="rollup_retention",
        description="how long the aggregates of 100% of spans are kept (a duration), in minutes after a day "
        "and hours after a week",
    )

    @field_validator(
        "clickhouse_url",
        "ingest_token",
        "query_token",
        "advertise",
        "peers_file",
        "owners_file",
        "slos_file",
        "alert_webhook",
        mode="before",
    )
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("peers", "advertise")
    @classmethod
    def _without_trailing_slash(cls, value: tuple[str, ...] | str | None) -> tuple[str, ...] | str | None:
        if isinstance(value, tuple):
            return tuple(url.rstrip("/") for url in value)
        return value.rstrip("/") if value is not None else None

    @model_validator(mode="after")
    def _check_together(self) -> ServeConfig:
        if self.owners_file is not None and not self.owners_file.is_file():
            raise ConfigError(f"--owners: no such file {self.owners_file}")
        if self.slos_file is not None and not self.slos_file.is_file():
            raise ConfigError(f"--slos: no such file {self.slos_file}")
        if self.alert_webhook is not None and not self.alert_webhook.startswith(("http://", "https://")):
            raise ConfigError(
                f"--alert-webhook must be an http:// or https:// URL, got {self.alert_webhook!r}"
            )
        if self.store == "clickhouse" and not self.clickhouse_url:
            raise ConfigError("--store clickhouse needs --clickhouse-url")
        clickhouse_schemes = ("http://", "https://", "chdb://")
        if self.store == "clickhouse" and not str(self.clickhouse_url).startswith(clickhouse_schemes):
            raise ConfigError(
                "--clickhouse-url must be http://user:pass@host:8123/database, https://... or chdb://PATH, "
                f"got {self.clickhouse_url!r}"
            )
        if self.peers and self.peers_file is not None:
            raise ConfigError("give the cluster's members with --peers or --peers-file, not both")
        if self.peers_file is not None and not self.peers_file.is_file():
            raise ConfigError(f"--peers-file: no such file {self.peers_file}")
        for url in (*self.peers, *([self.advertise] if self.advertise else [])):
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"cluster member URLs must start with http:// or https://, got {url!r}")
        # A defaulted address missing from the list is allowed (the satellite then owns no traces and forwards
        # all, as one leaving the cluster does; it warns at start); a wrong --advertise is a mistake.
        if self.peers and self.advertise and self.advertised_url not in self.peers:
            raise ConfigError(
                f"this satellite's URL {self.advertised_url} is not in --peers; set --advertise to the URL "
                "by which the others reach it, as written in --peers"
            )
        return self

    def validate(self) -> ServeConfig:
        """A no-op kept for callers: building one (``replace()`` included) validates it."""
        return self

    @property
    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(retention_s=self.retention_s, rollup_retention_s=self.rollup_retention_s)

    @property
    def decode_workers(self) -> int:
        """``--workers``, or the cores this process may run on."""
        if self.workers:
            return self.workers
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0)) or 1
        return os.cpu_count() or 1

    @property
    def clustered(self) -> bool:
        return bool(self.peers) or self.peers_file is not None

    @property
    def advertised_url(self) -> str:
        return (self.advertise or f"http://{self.host}:{self.port}").rstrip("/")


_FIELDS: dict[str, FieldInfo] = vars(ServeConfig)["__pydantic_fields__"]


def _key(name: str) -> str:
    """What the flags and the environment call a field: its alias if it has one, else its name."""
    alias = _FIELDS[name].validation_alias
    return alias if isinstance(alias, str) else name


_NAME_OF_KEY = {_key(name): name for name in _FIELDS} | {name: name for name in _FIELDS}


class _SettingsConfig(BaseSettings):
    """How the fields become flags and environment variables (pydantic-settings' sources read this)."""

    model_config = SettingsConfigDict(
        env_prefix="SPYGLASS_",
        env_prefix_target="all",  # SPYGLASS_DECISION_WAIT, not DECISION_WAIT, for a field with an alias
        validate_by_name=False,  # no --decision-wait-s beside --decision-wait
        cli_kebab_case=True,
        cli_show_env_vars=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
        # The value by which a flag means "not set" (and --help's word for a None default); "None" by default.
        cli_parse_none_str="unset",
    )


# The fields themselves, not copies: a BaseSettings cannot inherit them from a pydantic dataclass.
_FIELD_DEFINITIONS: dict[str, Any] = {name: (info.annotation, info) for name, info in _FIELDS.items()}
_ServeSettings = create_model("ServeSettings", __base__=_SettingsConfig, **_FIELD_DEFINITIONS)


class _Environment(EnvSettingsSource):
    """The ``SPYGLASS_*`` variables of a given mapping (``os.environ``, or a test's dict); empty ones unset.

    pydantic-settings matches names in any case; only upper-case ones are spyglass's, as they always were.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(_ServeSettings, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        upper_case = {name: value for name, value in self._environ.items() if name == name.upper()}
        return parse_env_vars(upper_case, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _flag(name: str) -> str:
    return "--" + _key(name).replace("_", "-")


def _env_var(name: str) -> str:
    return "SPYGLASS_" + _key(name).upper()


def _requirement(name: str, error: ErrorDetails) -> str | None:
    """What a refused value must be, from the field's declaration (``in (0, 1]``, ``duckdb or clickhouse``)."""
    info = _FIELDS[name]
    if error["type"] == "literal_error":
        choices = [str(choice) for choice in get_args(info.annotation)]
        return "must be " + (
            ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]
        )
    if error["type"] not in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return None
    lower = next((bound for bound in info.metadata if isinstance(bound, (Ge, Gt))), None)
    upper = next((bound for bound in info.metadata if isinstance(bound, (Le, Lt))), None)
    if lower is not None and upper is not None:
        left = f"[{lower.ge}" if isinstance(lower, Ge) else f"({lower.gt}"
        right = f"{upper.le}]" if isinstance(upper, Le) else f"{upper.lt})"
        return f"must be in {left}, {right}"
    if lower is not None:
        return f"must be >= {lower.ge}" if isinstance(lower, Ge) else f"must be > {lower.gt}"
    if upper is not None:
        return f"must be <= {upper.le}" if isinstance(upper, Le) else f"must be < {upper.lt}"
    return None


def _config_error(error: ValidationError, from_environment: set[str]) -> ConfigError:
    """The first refused value as one line naming its flag (and its variable, when it came from there)."""
    detail = error.errors()[0]
    cause = detail.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):
        return cause
    key = str(detail["loc"][0]) if detail["loc"] else ""
    if key not in _NAME_OF_KEY:
        return ConfigError(detail["msg"])
    name, value = _NAME_OF_KEY[key], detail["input"]
    requirement = _requirement(name, detail)
    if key in from_environment:
        if requirement is None and detail["type"] == "value_error":
            requirement = str(detail.get("ctx", {}).get("error", detail["msg"]))  # a validator's own words
        reason = f": {requirement}" if requirement else ""
        return ConfigError(f"{_env_var(name)}={value!r} is not a valid {_flag(name)}{reason}")
    if requirement is None:
        return ConfigError(f"{_flag(name)}={value!r}: {detail['msg']}")
    shown = repr(value) if detail["type"] == "literal_error" else value
    return ConfigError(f"{_flag(name)} {requirement}, got {shown}")


class _Sources(NamedTuple):
    """What ``add_serve_flags`` leaves in the parsed arguments for ``serve_config_from_args``."""

    flags: CliSettingsSource[argparse.ArgumentParser]
    environ: Mapping[str, str]


_SOURCES = "_spyglass_serve_sources"


def add_serve_flags(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Register ``serve``'s flags, one per field of ``ServeConfig``; each falls back to its ``SPYGLASS_<FLAG>``."""
    flags: CliSettingsSource[argparse.ArgumentParser] = CliSettingsSource(_ServeSettings, root_parser=parser)
    parser.set_defaults(**{_SOURCES: _Sources(flags, env)})


def serve_config_from_args(args: argparse.Namespace) -> ServeConfig:
    """Build and validate the configuration from parsed ``serve`` arguments; a flag wins over its variable."""
    sources: _Sources = getattr(args, _SOURCES)
    parsed = {key: value for key, value in vars(args).items() if key != _SOURCES}
    from_flags = sources.flags(parsed_args=parsed)()
    from_environment = _Environment(sources.environ)()
    try:
        return ServeConfig(**{**from_environment, **from_flags})
    except ValidationError as error:
        raise _config_error(error, set(from_environment) - set(from_flags)) from None


def parse_serve_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ServeConfig:
    """Convenience for tests and embedding: flags (and environment) to a validated config."""
    parser = argparse.ArgumentParser(prog="spyglass serve")
    add_serve_flags(parser, os.environ if env is None else env)
    return serve_config_from_args(parser.parse_args(list(argv)))
