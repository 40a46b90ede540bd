"""Total orders on observations: what "newer" means for orders and positions.

Merging keeps the maximum under these keys, so merging is idempotent,
commutative and monotonic by construction (a max over a total order is a
semilattice join). Every field of the value takes part in the key, so two
observations with equal keys are equal values.
"""

from __future__ import annotations

from decimal import Decimal

from ._types import Order, Position, Source

__all__ = ["compare_order_versions", "order_version", "position_version"]

# When two sources tie on every venue field, REST (the source of truth) wins.
# Keyed by value: an enum member's hash is a Python-level call, a str's is cached.
_SOURCE_RANK = {Source.WS.value: 0, Source.REST.value: 1}

_NONE_STR = (0, "")


def _opt_str(value: str | None) -> tuple[int, str]:
    return _NONE_STR if value is None else (1, value)


def _opt_dec(value: Decimal | None) -> tuple[int, Decimal]:
    return (0, Decimal(0)) if value is None else (1, value)


def _opt_int(value: int | None) -> tuple[int, int]:
    return (0, 0) if value is None else (1, value)


def order_version(order: Order) -> tuple[object, ...]:
    """The version key of one order observation; larger is newer.

    Compared, in this order (DESIGN.md §3): terminal before non-terminal; the
    venue update time; the filled quantity; the lifecycle rank of the status;
    the source (REST above the stream on a full tie); the venue sequence number
    (so within one source a higher sequence wins); then every remaining field,
    as a deterministic tie-break.
    """
    return (
        order.status.is_terminal,
        order.updated_at,
        order.filled_quantity,
        order.status.rank,
        _SOURCE_RANK[order.source._value_],
        _opt_int(order.sequence),
        _opt_dec(order.price),
        order.quantity,
        _opt_dec(order.average_fill_price),
        _opt_str(order.cancel_reason),
        _opt_str(order.client_id),
        order.type.value,
        order.side.value,
        order.instrument,
        order.created_at,
    )


def compare_order_versions(a: Order, b: Order) -> int:
    """``-1``, ``0`` or ``1`` as ``a``'s :func:`order_version` is below, equal to or above ``b``'s.

    The same answer as comparing the two keys, cheaper: the leading fields
    (terminal, update time, filled quantity) decide almost every comparison,
    and the whole keys are built only when those tie.
    """
    head_a = (a.status.is_terminal, a.updated_at, a.filled_quantity)
    head_b = (b.status.is_terminal, b.updated_at, b.filled_quantity)
    if head_a != head_b:
        return 1 if head_a > head_b else -1
    key_a, key_b = order_version(a), order_version(b)
    return (key_a > key_b) - (key_a < key_b)


def position_version(position: Position, *, inferred: bool = False) -> tuple[object, ...]:
    """The version key of one position observation; larger is newer.

    ``inferred`` marks a flat position the reconciler inferred from absence in
    a complete snapshot: any real observation at the same venue time beats it.
    """
    return (
        position.updated_at,
        not inferred,
        _SOURCE_RANK[position.source._value_],
        _opt_int(position.sequence),
        position.size,
        _opt_dec(position.entry_price),
        _opt_str(position.last_fill_id),
        position.instrument,
    )
