"""The package version: read by hatch for the wheel's metadata and by every surface that reports it."""

__version__ = "0.1.0"
