"""Triton Inference Server: the shipped models as a ``pytorch_libtorch`` model repository."""
