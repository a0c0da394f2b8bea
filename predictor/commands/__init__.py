"""Subcommands of the `predictor` CLI, one module each."""
