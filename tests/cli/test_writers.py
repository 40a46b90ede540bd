"""How ``reconcile run`` prints events a person reads."""

from __future__ import annotations

import pytest

from reconcile_core import FillRecorded
from reconcile_core._cli._writers import PrettyWriter

from ..core._builders import fill


class TestPrettyTimes:
    """Every time the core accepts prints: what a datetime cannot show prints as raw milliseconds."""

    def test_an_ordinary_time(self) -> None:
        line = PrettyWriter.format(FillRecorded(fill=fill("f1", time=1_700_000_000_123), offset=1))
        assert line.startswith("22:13:20.123  FILL")

    @pytest.mark.parametrize("ms", [1_700_000_000_000_000, 2**63 - 1])
    def test_a_time_beyond_the_calendar(self, ms: int) -> None:
        line = PrettyWriter.format(FillRecorded(fill=fill("f1", time=ms), offset=1))
        assert line.startswith(f"ms {ms}  FILL"), line
