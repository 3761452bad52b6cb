"""The MONAI Application Package (MAP): manifests from ``app.yaml``, the Dockerfile, output comparison.

See ``docs/deploy.md`` for building and running the image.
"""
