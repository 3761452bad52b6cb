"""Perfusion imaging MONAI Deploy application.

Run it with ``python -m app -i STUDY_FOLDER -o OUTPUT_FOLDER``; see ``app/README.md``
for the options, the environment variables and the exit codes.  The Python API is
:func:`app.runner.run`.
"""

from core.cuda_runtime import preload_cuda_runtime

__version__ = "0.1.0"

preload_cuda_runtime()  # Holoscan needs libcudart.so.13 before app.app imports monai.deploy
