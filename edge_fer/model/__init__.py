"""FERNet: its layers, the network and the training losses."""
