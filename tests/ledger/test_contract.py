"""Both ledgers pass the FillLedger contract of ``reconcile_core.testing``."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile_core import MemoryLedger
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.testing import FillLedgerContract, LedgerFactory, PersistentFillLedgerContract


class TestMemoryLedger(FillLedgerContract):
    @pytest.fixture
    def make_ledger(self) -> LedgerFactory:
        return lambda _name: MemoryLedger()


class TestSqliteLedger(PersistentFillLedgerContract):
    @pytest.fixture
    def make_ledger(self, tmp_path: Path) -> LedgerFactory:
        # "normal" skips the fsync per commit: the contract is about behaviour, not power loss.
        return lambda name: SqliteLedger(tmp_path / f"{name}.sqlite", synchronous="normal")
