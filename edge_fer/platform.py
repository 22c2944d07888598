"""Facts about the host: what its CPU is and can do (read once from ``/proc/cpuinfo``), this
process's memory, and on a Jetson its L4T / JetPack release.

Several choices depend on the CPU: bf16 autocast in training, and INT8 weight range
in quantization (x86 CPUs without VNNI multiply u8 x s8 pairs into a saturating
int16, so 8-bit weights can overflow there).  Reports record the name and flags.
"""

from __future__ import annotations

import platform
import re
import resource
import sys
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "asimddp")


@cache
def _fields() -> dict[str, str]:
    """The first processor's ``key: value`` lines (empty where /proc/cpuinfo does not exist)."""
    out: dict[str, str] = {}
    if CPUINFO.exists():
        for line in CPUINFO.read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


def cpu_name() -> str:
    return _fields().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """ISA flags (x86 ``flags``, Arm ``Features``)."""
    fields = _fields()
    return set((fields.get("flags") or fields.get("Features") or "").split())


def has_int8_dot_product() -> bool:
    """True where int8 products accumulate without int16 saturation (VNNI on x86; Arm has no such trap)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return True
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def has_bf16() -> bool:
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def summary() -> dict:
    """For reports: the CPU's name and the flags that decide INT8/bf16 speed and accuracy."""
    return {"cpu": cpu_name(), "flags": sorted(cpu_flags() & set(REPORTED_FLAGS))}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far.

    Linux's VmHWM first: ``ru_maxrss`` carries over the parent's resident size at fork
    time through exec, so a small CLI started by a big process (a benchmark driver)
    reported the driver's 2.1 GB instead of its own peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB elsewhere


def current_rss_mb() -> float:
    """Resident memory now (Linux /proc; 0 elsewhere): the growth while a runner opens is its footprint."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


# ----------------------------------------------------------------------------- Jetson


L4T_RELEASE = Path("/etc/nv_tegra_release")


def l4t_release(path: Path | None = None) -> str:
    """``R35.4.1`` from ``/etc/nv_tegra_release`` (``# R35 (release), REVISION: 4.1, ...``); '' off a Jetson."""
    try:
        first = (path or L4T_RELEASE).read_text().splitlines()[0]
    except (OSError, IndexError):
        return ""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", first)
    return f"R{m[1]}.{m[2]}" if m else first.lstrip("# ").strip()


# L4T release -> JetPack, from NVIDIA's JetPack archive; an unlisted release is reported as unknown, not guessed.
# R32 (JetPack 4.x) is listed to name the release in reports; its TensorRT 8.0/8.2 is not supported.
JETPACK = {
    "R32.5.0": "4.5", "R32.5.1": "4.5.1", "R32.6.1": "4.6", "R32.7.1": "4.6.1", "R32.7.2": "4.6.2",
    "R32.7.3": "4.6.3", "R32.7.4": "4.6.4", "R32.7.5": "4.6.5", "R32.7.6": "4.6.6",
    "R35.1.0": "5.0.2", "R35.2.1": "5.1", "R35.3.1": "5.1.1", "R35.4.1": "5.1.2", "R35.5.0": "5.1.3",
    "R35.6.0": "5.1.4", "R35.6.1": "5.1.5",
    "R36.2.0": "6.0 DP", "R36.3.0": "6.0", "R36.4.0": "6.1", "R36.4.3": "6.2", "R36.4.4": "6.2.1",
    "R38.2.0": "7.0",
}


def jetpack_release(l4t: str) -> str:
    """JetPack version of an L4T release (``R35.4.1`` -> ``5.1.2``); '' off a Jetson, ``unknown`` if unlisted."""
    if not l4t:
        return ""
    return JETPACK.get(l4t, f"unknown (L4T {l4t})")
