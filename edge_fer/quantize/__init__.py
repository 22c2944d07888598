"""``edge-fer quantize`` and ``calib``: calibration sets, activation ranges, INT8 for each target."""
