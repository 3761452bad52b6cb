"""Tests of the perfusion imaging MAP."""

from core.cuda_runtime import preload_cuda_runtime

preload_cuda_runtime()  # some tests import monai.deploy directly, before any app/operators module
