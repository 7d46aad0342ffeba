"""Benchmarks: speed and quality against named peers, each a script printing a table and writing JSON."""
