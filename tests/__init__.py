"""Tests of the perfusion imaging MAP."""
