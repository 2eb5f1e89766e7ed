"""Compatibility layers with other codebases' conventions."""
