"""The ``fk`` command line (typer). Commands are thin: they call library functions."""
