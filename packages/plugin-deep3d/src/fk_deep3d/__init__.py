"""fk-plugin-deep3d."""

__version__ = "0.1.0"
