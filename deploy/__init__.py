"""Deploying the application: the MAP container image (``deploy/map``) and what runs beside it."""
