"""The package's layers, read from its imports: handlers only translate HTTP, shared vocabulary lives in
``model``, and nothing imports back up the flow (receivers -> satellite -> store; analysis and the API read)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "spyglass"


def imports_of(layer: str) -> dict[str, set[str]]:
    """Every module of ``spyglass/<layer>`` (a package or one module) -> the modules it imports, at any depth
    of the file (function-level and ``TYPE_CHECKING`` imports count too)."""
    root = PACKAGE / layer
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    found: dict[str, set[str]] = {}
    for path in files:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(PACKAGE))] = names
    return found


def offenders(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in imports_of(layer).items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


def test_handlers_only_translate_http() -> None:
    assert offenders("api", ("numpy", "spyglass.receivers")) == []


def test_analysis_and_the_api_read_the_satellite_only_through_narrow_seams() -> None:
    """``LiveData``, ``RollupReader`` (``analysis/live.py``) and the figures in ``model/figures.py``."""
    assert offenders("api", ("spyglass.satellite",)) == []
    assert offenders("analysis", ("spyglass.satellite", "spyglass.cluster")) == []


def test_no_handler_reaches_into_the_buffer_or_the_aggregator() -> None:
    for path in sorted((PACKAGE / "api").rglob("*.py")):
        text = path.read_text()
        for name in (".buffer", ".aggregator", "read_consistent"):
            assert name not in text, f"{path.name} names {name}"


def test_model_is_the_bottom_layer() -> None:
    upper = (
        "spyglass.receivers",
        "spyglass.satellite",
        "spyglass.store",
        "spyglass.analysis",
        "spyglass.api",
    )
    assert offenders("model", (*upper, "spyglass.cluster", "spyglass.web", "spyglass.cli")) == []


def test_nothing_imports_back_up_the_flow() -> None:
    assert (
        offenders("store", ("spyglass.receivers", "spyglass.satellite", "spyglass.analysis", "spyglass.api"))
        == []
    )
    assert offenders("analysis", ("spyglass.receivers", "spyglass.api", "spyglass.cli")) == []
    assert offenders("satellite", ("spyglass.receivers", "spyglass.analysis", "spyglass.api")) == []
    assert offenders("receivers", ("spyglass.api", "spyglass.analysis")) == []


def test_alerting_reads_through_the_same_seams_as_the_api() -> None:
    """``alerting`` (the SLO evaluator, alerts, their delivery) reads what the API reads: it may import analysis,
    the store's protocol and the model, nothing of ingest, the satellite, the cluster or the API; and only the
    server and the API import it."""
    assert (
        offenders(
            "alerting",
            (
                "spyglass.receivers",
                "spyglass.satellite",
                "spyglass.cluster",
                "spyglass.api",
                "spyglass.web",
                "spyglass.cli",
                "spyglass.server",
                "spyglass.demo",
            ),
        )
        == []
    )
    store_imports = {
        name
        for names in imports_of("alerting").values()
        for name in names
        if name.startswith("spyglass.store")
    }
    assert store_imports <= {"spyglass.store.protocol"}
    importers = [
        module
        for layer in (
            "model",
            "receivers",
            "satellite",
            "store",
            "analysis",
            "cluster",
            "demo",
            "web",
            "cli",
            "config",
        )
        for module in offenders(layer, ("spyglass.alerting",))
    ]
    assert importers == []
