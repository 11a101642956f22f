"""The decoders share pieces only through public names: what two decoders use lives in a common module
(``limits``, ``result``, ``otlp_json_values``, ``otlp_proto_columns``), and no decoder module reaches into
another's private (``_``-prefixed) names, by ``from m import _x`` or by ``m._x``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spyglass.receivers.decoders as decoders_package

PACKAGE = "spyglass.receivers.decoders"
DECODERS = Path(decoders_package.__file__).resolve().parent


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def private_uses(source: str, module: str) -> list[str]:
    """Each use, in the source of decoder module ``module`` (``otlp_logs``), of a private name of another
    module of the package: imported by name, or read as an attribute of the imported module."""
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> decoder module it is bound to
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: "from .x import y" in this package
                base = PACKAGE.rsplit(".", node.level - 1)[0] if node.level > 1 else PACKAGE
                source_module = f"{base}.{node.module}" if node.module else base
            else:
                source_module = node.module or ""
            for alias in node.names:
                full = f"{source_module}.{alias.name}"
                if source_module == PACKAGE and (DECODERS / f"{alias.name}.py").exists():
                    aliases[alias.asname or alias.name] = full  # "from package import otlp_json as _json"
                elif source_module.startswith(PACKAGE) and source_module != f"{PACKAGE}.{module}":
                    if _is_private(alias.name):
                        found.append(f"{module}: from {source_module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _dotted(node.value)
            if owner is None:
                continue
            target = aliases.get(owner, owner)
            if target.startswith(PACKAGE + ".") and target != f"{PACKAGE}.{module}":
                found.append(f"{module}: {owner}.{node.attr} ({target})")
    return found


@pytest.mark.parametrize("path", sorted(DECODERS.glob("*.py")), ids=lambda path: path.stem)
def test_no_decoder_module_uses_another_modules_private_names(path: Path) -> None:
    assert private_uses(path.read_text(), path.stem) == []


def test_the_check_sees_both_ways_of_reaching_a_private_name() -> None:
    source = """
from spyglass.receivers.decoders import otlp_json as _json
from spyglass.receivers.decoders.otlp_proto_columns import _base64, attribute_maps
from .limits import _number
import spyglass.receivers.decoders.result
import spyglass.receivers.decoders.otlp_proto_columns as columns

def read(item):
    _own_helper(item)
    return _json._field(item, "a", "b"), columns._offsets(item), spyglass.receivers.decoders.result._log_lock
"""
    assert sorted(private_uses(source, "otlp_logs")) == [
        "otlp_logs: _json._field (spyglass.receivers.decoders.otlp_json)",
        "otlp_logs: columns._offsets (spyglass.receivers.decoders.otlp_proto_columns)",
        "otlp_logs: from spyglass.receivers.decoders.limits import _number",
        "otlp_logs: from spyglass.receivers.decoders.otlp_proto_columns import _base64",
        "otlp_logs: spyglass.receivers.decoders.result._log_lock (spyglass.receivers.decoders.result)",
    ]
    # A module's own private names, and public names of others, are fine.
    assert private_uses("from spyglass.receivers.decoders.limits import preview\n_x = 1\n", "limits") == []
