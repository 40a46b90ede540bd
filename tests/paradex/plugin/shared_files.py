"""Where the tests find the Paradex specs and recorded samples: ``shared/`` beside the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SHARED = (Path(__file__).resolve().parents[3] / ".." / "shared" / "paradex").resolve()
SAMPLES = SHARED / "samples"
SPEC = SHARED / "spec"


def require(path: Path) -> Path:
    """``path``, or skip the test: the shared Paradex material is not in this checkout's parent directory."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the Paradex specs and samples live in ../shared/paradex beside the repository")
    return path


def openapi() -> dict[str, Any]:
    return json.loads(require(SPEC / "openapi.json").read_text())


def asyncapi() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(require(SPEC / "asyncapi.yaml").read_text())
