"""Exponential backoff with jitter, and the jittered periodic interval."""

from __future__ import annotations

import random

import attrs

__all__ = ["Backoff", "jittered"]


@attrs.frozen(kw_only=True)
class Backoff:
    """Delays ``initial * 2**attempt`` capped at ``maximum``, each cut by up to ``jitter``.

    ``attempt`` counts failures so far, from 0. Cutting (never stretching)
    keeps the cap a true upper bound.
    """

    initial: float
    maximum: float
    jitter: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        base = self.maximum if attempt >= 64 else min(self.maximum, self.initial * 2.0**attempt)
        return base * (1.0 - self.jitter * rng.random())


def jittered(interval: float, jitter: float, rng: random.Random) -> float:
    """``interval`` scaled by a random factor in ``[1 - jitter, 1 + jitter]``."""
    return interval * (1.0 + jitter * (2.0 * rng.random() - 1.0))
