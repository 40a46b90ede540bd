"""reconcile_paradex: the Paradex venue plugin for reconcile_core."""

from __future__ import annotations

__all__: list[str] = []
