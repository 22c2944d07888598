"""What this host's CPU is and can do, read once from ``/proc/cpuinfo``.

Several choices depend on it: bf16 autocast in training, and INT8 weight range
in quantization (x86 CPUs without VNNI multiply u8 x s8 pairs into a saturating
int16, so 8-bit weights can overflow there).  Reports record the name and flags.
"""

from __future__ import annotations

import platform
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
