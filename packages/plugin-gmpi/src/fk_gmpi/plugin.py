"""fk-plugin-gmpi's registrations (import-light: no torch or model code here)."""

from __future__ import annotations

from fk.hookspecs import hookimpl  # noqa: F401
