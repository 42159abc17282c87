"""Tests for the web frontend (api/) and scripts/run_local.py."""
