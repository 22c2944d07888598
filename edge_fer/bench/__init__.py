"""``edge-fer bench``: build or reuse each device's artifacts, time them side by side, check parity."""
