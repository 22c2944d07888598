"""This process's memory, for reports: quantize and bench both say what a run needed."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Resident memory now (Linux /proc; 0 elsewhere): the growth while a runner opens is its footprint."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0
