"""Bundles the web UI (``ui/``, with npm) into ``spyglass/web/static/dist`` before setuptools collects the package's
files, so every sdist and wheel carries it: an installed spyglass serves its UI with no checkout and no Node.js.
Everything else about the package is declared in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import ExecError

ROOT = Path(__file__).resolve().parent
UI_SOURCES = ROOT / "ui"
UI_BUNDLE = ROOT / "spyglass" / "web" / "static" / "dist" / "index.html"  # ui/build.mjs writes it last
NPM_STEPS = (["ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"], ["run", "build"])


def ui_bundle_is_current() -> bool:
    """True when a bundle exists and no UI source is newer: the one an sdist carries, or setup.sh's, is reused."""
    if not UI_BUNDLE.is_file():
        return False
    built_at = UI_BUNDLE.stat().st_mtime
    for folder, subfolders, files in os.walk(UI_SOURCES):
        subfolders[:] = [name for name in subfolders if name != "node_modules"]
        if any(os.stat(os.path.join(folder, name)).st_mtime > built_at for name in files):
            return False
    return True


def build_ui() -> None:
    """Run the npm build of ``ui/`` unless the bundle is current."""
    if ui_bundle_is_current():
        return
    npm = shutil.which("npm")
    if npm is None or not (UI_SOURCES / "package.json").is_file():
        raise ExecError(
            "building spyglass bundles its web UI from ui/ with npm: install Node.js and npm "
            "(Debian: apt-get install nodejs npm), or build from an sdist, which carries the bundle"
        )
    for step in NPM_STEPS:
        try:
            subprocess.run([npm, *step], cwd=UI_SOURCES, check=True)
        except subprocess.CalledProcessError as error:
            raise ExecError(
                f"the web UI build failed: npm {' '.join(step)} exited {error.returncode}"
            ) from error


class BuildPyWithUI(build_py):
    """Wheels: the UI bundle exists before package data is collected. Editable installs serve the checkout's own
    bundle, which scripts/setup.sh builds, so they skip npm."""

    def run(self) -> None:
        if not self.editable_mode:
            build_ui()
        super().run()


class SdistWithUI(sdist):
    """Sdists carry the bundle too, so a wheel built from one (pip's way) needs no npm."""

    def run(self) -> None:
        build_ui()
        super().run()


setup(cmdclass={"build_py": BuildPyWithUI, "sdist": SdistWithUI})
