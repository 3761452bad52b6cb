"""Perfusion imaging MONAI Deploy application.

Run it with ``python -m app -i STUDY_FOLDER -o OUTPUT_FOLDER``; see ``app/README.md``
for the options, the environment variables and the exit codes.  The Python API is
:func:`app.runner.run`.
"""

__version__ = "0.1.0"
