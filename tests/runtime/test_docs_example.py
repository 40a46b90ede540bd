"""The example on the runtime docs page runs, on asyncio and trio."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

PAGE = Path(__file__).parents[2] / "docs" / "runtime.md"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_runtime_page_example_runs(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = re.search(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert code is not None
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code.group(1), str(PAGE), "exec"), namespace)  # noqa: S102 - our own docs
    anyio.run(namespace["main"], backend=backend)
    out = capsys.readouterr().out
    assert out.count("fill ") > 5
    assert out.rstrip().endswith("fills recovered by REST")
