"""fk-plugin-datasets."""

__version__ = "0.1.0"
