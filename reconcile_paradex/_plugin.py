"""The object registered under the ``reconcile_core.venues`` entry-point group."""

from __future__ import annotations

import inspect
from typing import Final

import attrs

from reconcile_core.errors import UsageError

from ._source import ParadexSource

__all__ = ["ParadexVenue", "venue"]

_OPTIONS: Final = tuple(inspect.signature(ParadexSource.__init__).parameters)[1:]


@attrs.frozen
class ParadexVenue:
    """Satisfies :class:`reconcile_core.typing.VenuePlugin` for Paradex."""

    name: str = "paradex"
    description: str = "Paradex perpetuals DEX: REST (truth) + WebSocket (hints), read-only token or JWT provider"

    def create_source(self, **options: object) -> ParadexSource:
        """A :class:`ParadexSource` from keyword options (the constructor's; ``account`` and ``token`` required).

        ``token`` may be a read-only token string.
        """
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise UsageError(
                f"unknown option(s) for the paradex venue: {', '.join(unknown)}; accepted: {', '.join(_OPTIONS)}"
            )
        missing = [name for name in ("account", "token") if name not in options]
        if missing:
            raise UsageError(f"the paradex venue needs option(s): {', '.join(missing)}")
        try:
            return ParadexSource(**options)  # type: ignore[arg-type]
        except TypeError as exc:
            raise UsageError(f"bad option for the paradex venue: {exc}") from exc

    def run_demo(
        self,
        *,
        seed: int = 1,
        faults: str = "light",
        duration: float = 15.0,
        accounts: int = 2,
        json_output: bool = False,
    ) -> int:
        """``reconcile demo``: the Paradex simulator with faults, real sessions over loopback, a verdict.

        Needs no account and no network (extra ``reconcile-trading[demo]``).
        Returns 0 when every account converged and every fill was delivered
        exactly once, else 1. See :mod:`reconcile_paradex._demo`.
        """
        from ._demo import run_demo  # noqa: PLC0415 - the simulator and rich load only for the demo

        return run_demo(seed=seed, faults=faults, duration=duration, accounts=accounts, json_output=json_output)


#: The entry point ``reconcile_core.venues: paradex = "reconcile_paradex:venue"``.
venue: Final = ParadexVenue()
