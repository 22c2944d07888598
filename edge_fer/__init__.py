"""edge-fer: take a facial-expression CNN from PyTorch to embedded devices, and prove nothing was lost."""

__version__ = "0.1.0"
