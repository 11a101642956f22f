"""spyglass installs like a real package: ``python -m build`` on a copy of the checkout (as a fresh clone has it,
with no UI bundle) makes an sdist and a wheel carrying the web UI; the wheel, installed in a clean virtualenv,
serves that UI with no checkout and no npm, and refuses ``chdb://`` naming the extra it needs.

One test, because each step needs the one before and the build and install are the slow part; it runs in the
parallel part of the suite (nothing here judges latency), in its own directories, so it disturbs no other test.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, otlp_span, otlp_trace

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
UI_BUNDLE = ("index.html", "app.js", "app.css")
SERVICE = "wheel-check"
FREE_PORTS = ("--port", "0", "--otlp-grpc-port", "0", "--otlp-http-port", "0", "--zipkin-port", "0")


def _run(args: list[str | Path], timeout_s: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure shows the end of what it printed."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, **kwargs)
    assert done.returncode == 0, (
        f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def _fresh_clone(dest: Path) -> None:
    """Copy the files a clone would have (tracked, or new and not ignored), mtimes kept; no build output comes
    along (it is gitignored), so the build hook has to bundle the UI itself."""
    listed = _run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], 60, cwd=ROOT
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not there to copy
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _clean_env() -> dict[str, str]:
    """The environment minus what would point the installed spyglass back at this checkout or configure it."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SPYGLASS_")}


def _serving_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The line ``spyglass serve`` prints once every port is bound."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if "serving:" in line:
                return line
            assert line, f"spyglass serve exited {proc.wait()} before serving"
    raise AssertionError("spyglass serve printed no serving line in time")


def test_wheel_installs_in_a_clean_venv_and_serves_the_ui(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run scripts/setup.sh"
    source, dist = tmp_path / "source", tmp_path / "dist"
    _fresh_clone(source)
    assert not (source / "spyglass/web/static/dist").exists()

    started = time.monotonic()
    _run([sys.executable, "-m", "build", "--outdir", dist, source], 240)
    build_s = time.monotonic() - started

    (sdist,) = dist.glob("spyglass-*.tar.gz")
    with tarfile.open(sdist) as archive:
        sdist_names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"ui/src/main.ts", "ui/package-lock.json", "setup.py"} <= sdist_names
    assert {f"spyglass/web/static/dist/{name}" for name in UI_BUNDLE} <= sdist_names
    assert not [name for name in sdist_names if "node_modules" in name or name.startswith("tests/")]
    (wheel,) = dist.glob("spyglass-*.whl")
    wheel_names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"spyglass/web/static/dist/{name}" for name in UI_BUNDLE} <= wheel_names
    assert "spyglass/demo/slos.yaml" in wheel_names  # scripts/demo.sh's --slos, also for installed demos
    assert not [name for name in wheel_names if name.startswith(("tests/", "ui/"))]

    started = time.monotonic()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], 120)
    # pip's configuration (a local index here) and its cache serve the dependencies: nothing is fetched twice.
    _run([venv / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel], 240)
    install_s = time.monotonic() - started
    print(
        f"\nwheel: python -m build (sdist, UI bundle, wheel) {build_s:.1f} s, venv and install {install_s:.1f} s"
    )

    env = _clean_env()
    # Away from the checkout (python -c puts its working directory first on sys.path): the UI is the wheel's.
    shell_of = "from spyglass.web import routes; print(routes.SHELL)"
    shell = Path(_run([venv / "bin/python", "-c", shell_of], 60, env=env, cwd=tmp_path).stdout.strip())
    assert shell.is_relative_to(venv) and shell.is_file(), shell

    serve = [str(venv / "bin/spyglass"), "serve", *FREE_PORTS]
    chdb_store = ["--store", "clickhouse", "--clickhouse-url", f"chdb://{tmp_path / 'clickhouse'}"]
    refused = subprocess.run(
        serve + chdb_store, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "pip install 'spyglass[chdb]'" in refused.stderr and "Traceback" not in refused.stderr

    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen(
            [*serve, "--data-dir", str(tmp_path / "data"), "--decision-wait", "0.2"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        try:
            _check_served_ui(_serving_line(proc, 60))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _services(api: str) -> set[str]:
    return {service["name"] for service in httpx.get(api + "/api/v1/services", timeout=10).json()["services"]}


def _check_served_ui(serving: str) -> None:
    """One span in over OTLP/HTTP, then the services page in chromium: the shell loads, its JavaScript lists
    the service, and nothing throws."""
    from playwright.sync_api import sync_playwright

    api = re.search(r"UI and API (http://\S+?)/? \|", serving)
    otlp_http = re.search(r"OTLP HTTP (http://\S+) \|", serving)
    assert api and otlp_http, serving
    trace_id = secrets.token_hex(16)
    spans = [
        otlp_span(trace_id, secrets.token_hex(8), None, "GET /", time.time_ns() - 10**9, 5 * 10**6, kind=2)
    ]
    sent = httpx.post(otlp_http[1] + "/v1/traces", json=otlp_trace(SERVICE, spans), timeout=30)
    assert sent.status_code == 200, sent.text
    deadline = time.monotonic() + 20
    while SERVICE not in _services(api[1]):
        assert time.monotonic() < deadline, "the span never reached the store"
        time.sleep(0.1)

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(api[1] + "/")
            page.wait_for_selector(f'#services tr[data-service="{SERVICE}"]')
            page.wait_for_selector("header .status:has-text('spans received')")
        finally:
            browser.close()
    assert not errors, errors
