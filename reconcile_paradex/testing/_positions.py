"""Position arithmetic: a position is the running result of its fills.

Kept apart from the venue so that the same fold serves a new fill and the
replay after a trade bust.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

__all__ = ["PositionState", "apply_fill"]

ZERO = Decimal(0)
QUANTUM = Decimal("0.00000001")


def quantize(value: Decimal) -> Decimal:
    """``value`` at 8 decimals, the precision Paradex quotes pnl and averages in."""
    return value.quantize(QUANTUM)


@attrs.define
class PositionState:
    """The mutable running state of one (account, market) position."""

    size: Decimal = ZERO
    average_entry_price: Decimal = ZERO
    exit_notional: Decimal = ZERO
    exit_size: Decimal = ZERO
    realized: Decimal = ZERO
    last_fill_id: str = ""
    opened_at: int = 0
    closed_at: int = 0

    @property
    def average_exit_price(self) -> Decimal:
        return quantize(self.exit_notional / self.exit_size) if self.exit_size else ZERO


def apply_fill(state: PositionState, *, signed_size: Decimal, price: Decimal, fill_id: str, at: int) -> Decimal:
    """Fold one fill into ``state``; return the pnl it realized."""
    old = state.size
    new = old + signed_size
    realized = ZERO
    if old == 0 or (old > 0) == (signed_size > 0):
        # Opening or increasing: the entry price is the size-weighted average.
        if old == 0:
            state.opened_at = at
            state.exit_notional = state.exit_size = ZERO
            state.realized = ZERO
        state.average_entry_price = quantize(
            (abs(old) * state.average_entry_price + abs(signed_size) * price) / abs(new)
        )
    else:
        closed = min(abs(signed_size), abs(old))
        direction = 1 if old > 0 else -1
        realized = quantize((price - state.average_entry_price) * closed * direction)
        state.realized += realized
        state.exit_notional += price * closed
        state.exit_size += closed
        if new == 0:
            state.closed_at = at
        elif (new > 0) != (old > 0):
            # Flipped: what is left was opened at this fill's price.
            state.average_entry_price = price
            state.opened_at = at
            state.exit_notional = state.exit_size = ZERO
    state.size = new
    state.last_fill_id = fill_id
    if new != 0:
        state.closed_at = 0
    return realized
