"""What the end-to-end tests of third-party JavaScript clients share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

#: The Node packages of those tests, pinned in ``package-lock.json`` (``npm ci --prefix tests/e2e/js``).
JS_DIR = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` binary, or skip when the JavaScript clients cannot run here (``scripts/setup.sh`` and CI
    install both)."""
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not installed; the JavaScript client tests need Node.js >= 18.19")
    if not (JS_DIR / "node_modules").is_dir():
        pytest.skip(f"{JS_DIR / 'node_modules'} is missing; run `npm ci --prefix tests/e2e/js` first")
    return found
