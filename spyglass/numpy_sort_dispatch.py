"""numpy's AVX-512 sort is slow on AMD Zen 4: there, numpy is told to keep to its AVX2 kernels, before it loads.

numpy sorts with x86-simd-sort, whose AVX-512 partition step stores each vector with a compress-store to memory,
an instruction Zen 4 runs in microcode (over 100 cycles; Zen 5 runs it fast, Intel always did). The aggregator
merges every span's rollup codes with ``np.sort``; on the Zen 4 machines spyglass is measured on, an ``int64``
sort of 262,144 codes took 43 ns a code on numpy's AVX-512 kernels and 9 ns on its AVX2 ones, and the whole
receive-to-buffer path ran 8-10% faster. numpy reads the CPU features it must leave unused from
``NPY_DISABLE_CPU_FEATURES`` once, when it is first imported; so this runs when spyglass is imported (before any
of its modules imports numpy), and the processes spyglass starts inherit the variable. It does nothing when numpy
is loaded already, or when the variable is set: an operator's choice, even an empty one, wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

VARIABLE = "NPY_DISABLE_CPU_FEATURES"
#: numpy's dispatch targets at and above AVX-512 (the names numpy 2.4 introduced; older ones name others).
AVX512_TARGETS = "X86_V4 AVX512_ICL AVX512_SPR"
#: ``cpu family`` of AMD's Zen 3 and Zen 4 (0x19): of the two, only Zen 4 has AVX-512.
ZEN4_FAMILY = 25


def first_cpu(cpuinfo: str) -> dict[str, str]:
    """The fields of the first processor of a ``/proc/cpuinfo`` text (every core of a machine is alike)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


def sorts_slowly_on_avx512(cpu: Mapping[str, str]) -> bool:
    """Whether the CPU is a Zen 4: AMD, family 0x19, with AVX-512."""
    return (
        cpu.get("vendor_id") == "AuthenticAMD"
        and cpu.get("cpu family") == str(ZEN4_FAMILY)
        and "avx512f" in cpu.get("flags", "").split()
    )


def names_avx512_targets(numpy_version: str) -> bool:
    """Whether this numpy names its AVX-512 dispatch targets as ``AVX512_TARGETS`` does (2.4 and later)."""
    try:
        major, minor = (int(part) for part in numpy_version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (2, 4)


def keep_numpy_off_avx512_sort(
    environ: MutableMapping[str, str] | None = None,
    loaded: Mapping[str, object] | None = None,
    cpuinfo_path: str = "/proc/cpuinfo",
) -> str | None:
    """Set ``NPY_DISABLE_CPU_FEATURES`` to the AVX-512 targets on a Zen 4 when numpy is not loaded yet and the
    variable is not set; returns the value set, or None when nothing was changed."""
    environ = os.environ if environ is None else environ
    loaded = sys.modules if loaded is None else loaded
    if "numpy" in loaded or VARIABLE in environ:
        return None
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as source:
            head = source.read(8192)  # the first processor's block, not a many-core machine's whole file
    except OSError:
        return None
    if not sorts_slowly_on_avx512(first_cpu(head)):
        return None
    from importlib import metadata  # here: only a Zen 4 pays for its import

    try:
        version = metadata.version("numpy")
    except metadata.PackageNotFoundError:
        return None
    if not names_avx512_targets(version):
        return None
    environ[VARIABLE] = AVX512_TARGETS
    return AVX512_TARGETS
