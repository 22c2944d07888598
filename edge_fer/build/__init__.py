"""``edge-fer build``: device engines (OpenVINO IR, TensorRT engine) and the Jetson bundle."""
