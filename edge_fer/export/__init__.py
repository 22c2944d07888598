"""``edge-fer export``: PyTorch -> ONNX, verified against PyTorch; the ONNX I/O other stages share."""
