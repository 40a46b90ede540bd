"""The pure core does no I/O: importing it loads no I/O library, and its source imports none."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import reconcile_core

IO_LIBRARIES = ("anyio", "httpx", "wsproto", "sqlite3", "_sqlite3", "trio", "asyncio", "socket", "ssl")
FORBIDDEN_IN_SOURCE = {
    "anyio",
    "asyncio",
    "httpx",
    "logging",
    "os",
    "random",
    "reconcile_paradex",
    "socket",
    "sqlite3",
    "ssl",
    "subprocess",
    "threading",
    "time",
    "trio",
    "wsproto",
}


def _loaded_by_import() -> dict[str, list[str]]:
    script = (
        "import json, sys; before = set(sys.modules); import reconcile_core; "
        "new = sorted(set(sys.modules) - before); "
        "print(json.dumps({'new': new, 'core': sorted(m for m in sys.modules if m.startswith('reconcile_core'))}))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


class TestPureCore:
    """`import reconcile_core` stays free of I/O."""

    def test_import_loads_no_io_library(self) -> None:
        loaded = _loaded_by_import()["new"]
        offenders = [m for m in loaded if m.split(".")[0] in IO_LIBRARIES]
        assert offenders == []

    def test_pure_modules_import_nothing_forbidden(self) -> None:
        modules = _loaded_by_import()["core"]
        assert "reconcile_core._reconciler" in modules, "the scan must cover the reconciler"
        root = Path(reconcile_core.__file__).parent
        problems = []
        for name in modules:
            relative = name.split(".")[1:]
            path = root.joinpath(*relative)
            path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                problems += [f"{name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN_IN_SOURCE]
        # importlib.metadata is only touched lazily by __getattr__("__version__").
        assert problems == []

    def test_the_scan_can_fail(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.py"
        bad.write_text("import time\nfrom anyio import sleep\n")
        tree = ast.parse(bad.read_text())
        found = [
            n.names[0].name if isinstance(n, ast.Import) else n.module
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
        ]
        assert [f for f in found if f and f.split(".")[0] in FORBIDDEN_IN_SOURCE] == ["time", "anyio"]

    def test_public_names_are_sorted_and_exported(self) -> None:
        assert list(reconcile_core.__all__) == sorted(reconcile_core.__all__)
        for name in reconcile_core.__all__:
            assert hasattr(reconcile_core, name), name

    def test_version(self) -> None:
        assert reconcile_core.__version__ == "0.1.0"
