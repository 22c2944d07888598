"""What this host's CPU is and can do, read once from ``/proc/cpuinfo``.

Several choices depend on it: bf16 autocast in training, and INT8 weight range
in quantization (x86 CPUs without VNNI multiply u8 x s8 pairs into a saturating
int16, so 8-bit weights can overflow there).  Reports record the name and flags.
"""

from __future__ import annotations

import platform
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
