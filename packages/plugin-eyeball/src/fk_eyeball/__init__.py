"""fk-plugin-eyeball."""

__version__ = "0.1.0"
