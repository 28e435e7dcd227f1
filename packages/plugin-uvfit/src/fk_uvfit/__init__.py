"""fk-plugin-uvfit."""

__version__ = "0.1.0"
