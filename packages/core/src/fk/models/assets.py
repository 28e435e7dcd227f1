"""Gated face-model files fk can use but never downloads (filled in by fk.models)."""

from __future__ import annotations

from fk.components import Asset

ASSETS: tuple[Asset, ...] = ()
