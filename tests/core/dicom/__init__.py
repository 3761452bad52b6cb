"""Tests of core.dicom."""
