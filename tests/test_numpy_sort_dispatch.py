"""numpy kept off its AVX-512 sort on AMD Zen 4 (``spyglass.numpy_sort_dispatch``): which CPUs, when the variable is
set, that an operator's setting wins, and that the installed numpy takes the value and leaves AVX-512 unused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spyglass import numpy_sort_dispatch as dispatch

FLAGS_AVX2 = "fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi1 bmi2"
FLAGS_AVX512 = FLAGS_AVX2 + " avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16"


def cpuinfo(vendor: str, family: int, flags: str, processors: int = 2) -> str:
    block = (
        "processor\t: {n}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: 17\n"
        "model name\t: A CPU\nflags\t\t: {flags}\n\n"
    )
    return "".join(block.format(n=n, vendor=vendor, family=family, flags=flags) for n in range(processors))


ZEN4 = cpuinfo("AuthenticAMD", 25, FLAGS_AVX512)


@pytest.mark.parametrize(
    ("text", "slow"),
    [
        (ZEN4, True),
        (cpuinfo("AuthenticAMD", 25, FLAGS_AVX2), False),  # Zen 3: same family, no AVX-512
        (cpuinfo("AuthenticAMD", 26, FLAGS_AVX512), False),  # Zen 5 compress-stores fast
        (cpuinfo("GenuineIntel", 6, FLAGS_AVX512), False),  # x86-simd-sort's own target
        ("", False),
        ("processor\t: 0\nvendor_id: AuthenticAMD\n", False),  # no family, no flags
    ],
)
def test_only_zen4_is_told_apart(text: str, slow: bool) -> None:
    assert dispatch.sorts_slowly_on_avx512(dispatch.first_cpu(text)) is slow


def test_the_first_processor_is_read_even_after_blank_lines() -> None:
    cpu = dispatch.first_cpu("\n\n" + cpuinfo("AuthenticAMD", 25, FLAGS_AVX512, processors=64))
    assert cpu["processor"] == "0"
    assert cpu["cpu family"] == "25"


@pytest.mark.parametrize(
    ("version", "named"),
    [
        ("2.4.6", True),
        ("2.4.0rc1", True),
        ("3.0.0", True),
        ("2.3.5", False),
        ("1.26.4", False),
        ("dev", False),
    ],
)
def test_the_targets_are_named_by_numpy_2_4_and_later(version: str, named: bool) -> None:
    assert dispatch.names_avx512_targets(version) is named


def written(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return str(path)


def test_set_on_zen4_before_numpy_loads(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    value = dispatch.keep_numpy_off_avx512_sort(environ, {}, written(tmp_path, ZEN4))
    assert value == dispatch.AVX512_TARGETS
    assert environ == {dispatch.VARIABLE: dispatch.AVX512_TARGETS}


@pytest.mark.parametrize("set_before", ["", "AVX512_SPR"])
def test_an_operators_setting_wins_even_empty(tmp_path: Path, set_before: str) -> None:
    environ = {dispatch.VARIABLE: set_before}
    assert dispatch.keep_numpy_off_avx512_sort(environ, {}, written(tmp_path, ZEN4)) is None
    assert environ == {dispatch.VARIABLE: set_before}


def test_nothing_once_numpy_is_loaded_or_elsewhere(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    assert dispatch.keep_numpy_off_avx512_sort(environ, {"numpy": object()}, written(tmp_path, ZEN4)) is None
    intel = written(tmp_path, cpuinfo("GenuineIntel", 6, FLAGS_AVX512))
    assert dispatch.keep_numpy_off_avx512_sort(environ, {}, intel) is None
    assert dispatch.keep_numpy_off_avx512_sort(environ, {}, str(tmp_path / "absent")) is None
    assert environ == {}


def fresh_python(code: str, **variables: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != dispatch.VARIABLE}
    environ.update(variables)
    done = subprocess.run(
        [sys.executable, "-W", "error::ImportWarning", "-c", code],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


FEATURES = "from numpy._core._multiarray_umath import __cpu_features__ as f; "


def test_the_installed_numpy_takes_the_value_and_leaves_avx512_unused() -> None:
    """The names are numpy's own dispatch targets (a name it does not dispatch is an ImportWarning, an error
    here), and with them numpy reports AVX-512 unused even where the machine has it."""
    unused = fresh_python(
        f"import numpy; {FEATURES} print(f['X86_V4'])", **{dispatch.VARIABLE: dispatch.AVX512_TARGETS}
    )
    assert unused == "False"


def test_importing_spyglass_first_sets_it_on_this_machine_when_it_is_a_zen4() -> None:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as source:
        zen4 = dispatch.sorts_slowly_on_avx512(dispatch.first_cpu(source.read(8192)))
    code = f"import os, spyglass, numpy; {FEATURES} print(os.environ.get('{dispatch.VARIABLE}')); print(f['X86_V4'])"
    variable, avx512_used = fresh_python(code).splitlines()
    assert variable == (dispatch.AVX512_TARGETS if zen4 else "None")
    if zen4:
        assert avx512_used == "False"
