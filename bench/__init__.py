"""Benchmarks: scripts that print our figures beside their references."""
