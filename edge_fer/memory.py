"""This process's memory, for reports: quantize and bench both say what a run needed."""

from __future__ import annotations

import resource
import sys


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
