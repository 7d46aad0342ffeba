"""Subcommand groups of the ``jamwave`` command line, one module per package."""
