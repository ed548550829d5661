"""evalgen's version, in a module of its own so that provenance and packaging read it without
importing the public API (which imports every layer)."""

__version__ = "0.1.0"
