"""The conformance kit: contract test suites, fakes and Hypothesis strategies.

Import it from tests only: it needs ``pytest`` and ``hypothesis``
(``pip install 'reconcile-trading[testing]'``). A venue plugin proves itself
by subclassing the contract classes here, the way keyring backends do.
"""

from __future__ import annotations

from ._fake_source import NO_FAULTS, Faults, FaultySource
from ._fake_venue import FakeVenue
from ._ledger_contract import (
    FillLedgerContract,
    LedgerFactory,
    LedgerStateMachine,
    PersistentFillLedgerContract,
    ledger_state_machine,
)
from ._source_contract import SourceCase, SourceScenario, StateSourceContract

__all__ = [
    "NO_FAULTS",
    "FakeVenue",
    "Faults",
    "FaultySource",
    "FillLedgerContract",
    "LedgerFactory",
    "LedgerStateMachine",
    "PersistentFillLedgerContract",
    "SourceCase",
    "SourceScenario",
    "StateSourceContract",
    "ledger_state_machine",
]
