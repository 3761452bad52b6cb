"""Make Holoscan importable on machines without a system CUDA toolkit.

Holoscan's core libraries need ``libcudart.so.13`` just to load, even on CPU-only machines,
but their RUNPATH only covers Holoscan's own folder.  The ``nvidia-cuda-runtime`` wheel (in
requirements.txt) ships the library inside site-packages; loading it once with
``RTLD_GLOBAL`` before the first ``monai.deploy``/``holoscan`` import lets the dynamic loader
resolve Holoscan's dependency by its SONAME.  A system CUDA runtime, when present, wins.
No framework import here: this module must run before the framework is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

CUDA_RUNTIME_SONAME = "libcudart.so.13"


def preload_cuda_runtime() -> Path | None:
    """Load the wheel's CUDA runtime if the system has none; returns the file loaded, if any."""
    if ctypes.util.find_library("cudart"):
        return None
    spec = importlib.util.find_spec("nvidia.cu13")
    if spec is None or not spec.submodule_search_locations:
        logger.warning(
            "%s not found on this system and the nvidia-cuda-runtime wheel is missing; "
            "install the project's requirements.txt",
            CUDA_RUNTIME_SONAME,
        )
        return None
    library = Path(next(iter(spec.submodule_search_locations))) / "lib" / CUDA_RUNTIME_SONAME
    ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    return library
