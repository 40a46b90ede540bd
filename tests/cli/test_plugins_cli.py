"""A broken third-party venue plugin is reported, and never hides the working ones or shows the token."""

from __future__ import annotations

import importlib.metadata
import itertools
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import pytest

from reconcile_core import plugins
from reconcile_core._cli import main
from reconcile_core.plugins import GROUP, VenueRegistry

#: A token naming the account ``0x123`` (``{"sub": "0x123"}``).
TOKEN = "x.eyJzdWIiOiIweDEyMyJ9.y"  # noqa: S105 - a sample, not a secret

_counter = itertools.count()

#: ``install({name: module source})``: the registry the command line sees (the real paradex plugin too).
Install: TypeAlias = Callable[[dict[str, str]], None]

MODULE = """
class Venue:
    name = {name!r}
    description = "a throwaway venue"

    def create_source(self, **options):
        {body}

venue = Venue()

class Moody:
    name = {name!r}

    @property
    def description(self):
        raise KeyError("moody")

    def create_source(self, **options):
        return None

moody = Moody()
"""


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """See :data:`Install`; a name holding "moody" registers the module's ``moody`` object."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(venues: dict[str, str]) -> None:
        points = [
            point
            for point in importlib.metadata.entry_points(group=GROUP)
            if point.name == "paradex"  # the real one, working
        ]
        for name, source in venues.items():
            module = f"cli_venue_{next(_counter)}"
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            monkeypatch.delitem(sys.modules, module, raising=False)
            attribute = "moody" if "moody" in name else "venue"
            points.append(importlib.metadata.EntryPoint(name=name, value=f"{module}:{attribute}", group=GROUP))
        monkeypatch.setattr(plugins, "_default", VenueRegistry(points))

    return install


def _module(name: str, body: str) -> str:
    return MODULE.format(name=name, body=body)


def test_venues_lists_every_plugin_and_marks_the_broken_ones(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    install({"exiting": "raise SystemExit(0)\n", "moody": _module("moody", "return None")})
    assert main(["venues"]) == 2
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines()[2:]}
    assert set(rows) == {"exiting", "moody", "paradex"}
    assert "cannot be used: PluginLoadError" in rows["exiting"]
    assert "cannot be used: PluginValidationError" in rows["moody"]
    assert "cannot be used" not in rows["paradex"]
    errors = captured.err.splitlines()
    assert len(errors) == 2, errors
    assert any("SystemExit" in line for line in errors)
    assert any("reading its 'description' raised KeyError" in line for line in errors)


@pytest.mark.parametrize(
    "case",
    [
        ("raise TypeError('bad options ' + repr(options))", "failed to create its source (TypeError: bad options"),
        ("return None", "returned NoneType from create_source, not a StateSource"),
    ],
)
def test_a_plugin_failing_to_create_its_source_is_a_plugin_error_without_the_token(
    install: Install,
    case: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body, expected = case
    install({"odd": _module("odd", body)})
    monkeypatch.setenv("ODD_TOKEN", TOKEN)
    assert main(["run", "odd", "--once", "--ledger", str(tmp_path / "l.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reconcile: error: "), err
    assert expected in err
    assert "Traceback" not in err
    assert TOKEN not in err
