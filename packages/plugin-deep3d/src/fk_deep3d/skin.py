"""Deep3D's skin attention mask now lives in core (``fk.models.skin``: uvfit's preprocessing uses it too)."""

from fk.models.skin import *  # noqa: F403
