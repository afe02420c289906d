"""Shared test helpers: the CLI runners (subprocess and in-process) and tiny dataset writers."""
