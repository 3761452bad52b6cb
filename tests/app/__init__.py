"""Tests of the application: series selection, run record, runner and command line."""
