"""Lung segmentation and CT enhancement (seed 000, Eq. 1)."""
