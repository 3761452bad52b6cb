"""The CUDA 13 runtime that Holoscan needs is found in the nvidia-cuda-runtime wheel when the system has none."""

import ctypes

from core import cuda_runtime


def test_system_runtime_wins(monkeypatch):
    monkeypatch.setattr(cuda_runtime.ctypes.util, "find_library", lambda name: "libcudart.so.13")
    assert cuda_runtime.preload_cuda_runtime() is None


def test_wheel_runtime_is_loaded_when_the_system_has_none(monkeypatch):
    monkeypatch.setattr(cuda_runtime.ctypes.util, "find_library", lambda name: None)
    library = cuda_runtime.preload_cuda_runtime()
    assert library is not None and library.name == "libcudart.so.13" and library.is_file()
    # a real CUDA runtime: it reports its version even without a GPU
    version = ctypes.c_int(0)
    assert ctypes.CDLL(str(library)).cudaRuntimeGetVersion(ctypes.byref(version)) == 0
    assert version.value // 1000 == 13
