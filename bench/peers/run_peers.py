"""Runs TraceRCA and MicroRank, as RCAEval publishes them on PyPI, over span frames written by explain_peers.py.

    .venv-peers/bin/python bench/peers/run_peers.py MANIFEST.json RESULTS.json
    .venv-peers/bin/python bench/peers/run_peers.py --check

It runs in .venv-peers (bench/peers_setup.sh), never in spyglass's .venv, and all cases go through one process
so that pandas and numpy start once. The manifest lists ``{"seed", "frame", "inject_time_us"}`` per case, the
frame being a CSV in RCAEval's trace layout; the results give, per case and method, the raw ranking, the
services it names in order, the time of the call and the error if it raised.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

METHODS = ("tracerca", "microrank")
ID_COLUMNS = ("traceID", "spanID", "parentSpanID", "serviceName", "methodName", "operationName")

Method = Callable[..., dict[str, Any]]


def load(name: str) -> Method:
    """RCAEval's ``e2e/<name>.py``, loaded by file path.

    ``import RCAEval.e2e`` runs that package's ``__init__``, which needs scikit-learn and, on Python 3.11, imports
    its RCD, MMRCD and TORAI methods (causal-learn, networkx, matplotlib); the two modules themselves need only
    pandas, numpy, tqdm and dateutil.
    """
    spec = importlib.util.find_spec("RCAEval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("RCAEval is not installed here: run bash bench/peers_setup.sh")
    path = Path(spec.submodule_search_locations[0]) / "e2e" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"rcaeval_e2e_{name}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)  # type: ignore[no-any-return]


def run(method: Method, frame: pd.DataFrame, inject_time_us: int) -> dict[str, Any]:
    """One method on one case: its ranking, the services it names (distinct, in order), its time.

    Both methods rank ``serviceName + "_" + methodName`` strings; the frame itself says which service each one
    is, so no name is split. They print and draw progress bars, which are swallowed to keep the output clean.
    """
    service_of = dict(
        zip(frame["serviceName"] + "_" + frame["methodName"], frame["serviceName"], strict=True)
    )
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ranks = [str(r) for r in method(frame.copy(), inject_time=inject_time_us)["ranks"]]
        error = None
    except Exception as e:  # a peer that raises on a case has missed it; the bench reports how often and why
        ranks, error = [], f"{type(e).__name__}: {e}"
    ms = (time.perf_counter() - started) * 1e3
    services: list[str] = []
    for r in ranks:
        service = service_of.get(r, r)
        if service not in services:
            services.append(service)
    return {"ranks": ranks, "services": services, "ms": ms, "error": error}


def main() -> None:
    methods = {name: load(name) for name in METHODS}
    if sys.argv[1:] == ["--check"]:
        print(f"run_peers: rcaeval {importlib.metadata.version('rcaeval')}: {', '.join(methods)} load")
        return
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    manifest = json.loads(Path(sys.argv[1]).read_text())
    results: dict[str, dict[str, Any]] = {}
    for item in manifest["cases"]:
        frame = pd.read_csv(item["frame"], dtype=dict.fromkeys(ID_COLUMNS, str))
        results[str(item["seed"])] = {
            name: run(method, frame, int(item["inject_time_us"])) for name, method in methods.items()
        }
    output = {"rcaeval": importlib.metadata.version("rcaeval"), "results": results}
    Path(sys.argv[2]).write_text(json.dumps(output))


if __name__ == "__main__":
    main()
