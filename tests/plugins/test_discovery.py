"""Venue plugin discovery, with throwaway plugin distributions really installed on a temporary path."""

from __future__ import annotations

import importlib.metadata
import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from reconcile_core.errors import PluginError, PluginLoadError, PluginNotFoundError, PluginValidationError
from reconcile_core.plugins import GROUP, VenueRegistry, available_venues, load_venue
from reconcile_core.typing import VenuePlugin

_counter = itertools.count()

PLUGIN_MODULE = """
class Venue:
    name = {name!r}
    description = "a throwaway venue for tests"

    def create_source(self, **options):
        return ("source", options)

venue = Venue()

class NoFactory:
    name = {name!r}
    description = "forgot create_source"

incomplete = NoFactory()

class Misnamed(Venue):
    name = "something-else"

misnamed = Misnamed()
"""


class Site:
    """A directory on ``sys.path`` into which throwaway distributions are installed (dist-info + module)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self._monkeypatch = monkeypatch
        root.mkdir(parents=True, exist_ok=True)
        monkeypatch.syspath_prepend(str(root))

    def install(self, dist: str, version: str, entries: dict[str, str], modules: dict[str, str]) -> None:
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}\n")
        (info / "RECORD").write_text("")
        for module, source in modules.items():
            path = self.root / f"{module}.py"
            path.write_text(textwrap.dedent(source))
            self._monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    return Site(tmp_path / "site-packages", monkeypatch)


def unique(prefix: str) -> str:
    return f"{prefix}_{next(_counter)}"


def test_a_throwaway_distribution_is_discovered_and_loaded(site: Site) -> None:
    module = unique("throwaway_venue")
    site.install(
        "throwaway-venue", "1.0", {"throwaway": f"{module}:venue"}, {module: PLUGIN_MODULE.format(name="throwaway")}
    )
    registry = VenueRegistry()
    assert "throwaway" in registry.names()
    (entry,) = registry.entries["throwaway"]
    assert (entry.distribution, entry.version, entry.value) == ("throwaway-venue", "1.0", f"{module}:venue")
    plugin = registry.load("throwaway")
    assert isinstance(plugin, VenuePlugin)
    assert plugin.create_source(x=1) == ("source", {"x": 1})
    assert registry.load("throwaway") is plugin  # cached


def test_discovery_is_lazy_and_read_only(site: Site) -> None:
    registry = VenueRegistry()
    assert "not read yet" in repr(registry)
    module = unique("late_venue")
    # installed after the registry was made, before it was first read: still found
    site.install("late-venue", "0.1", {"late": f"{module}:venue"}, {module: PLUGIN_MODULE.format(name="late")})
    assert "late" in registry.names()
    with pytest.raises(TypeError):
        registry.entries["other"] = ()  # type: ignore[index]


def test_the_paradex_plugin_is_registered() -> None:
    import reconcile_paradex

    assert "paradex" in available_venues()
    assert load_venue("paradex") is reconcile_paradex.venue


def test_an_unknown_name_lists_the_installed_plugins(site: Site) -> None:
    module = unique("listed_venue")
    site.install("listed-venue", "2.0", {"listed": f"{module}:venue"}, {module: PLUGIN_MODULE.format(name="listed")})
    with pytest.raises(PluginNotFoundError) as caught:
        VenueRegistry().load("nosuchvenue")
    message = str(caught.value)
    assert "'nosuchvenue'" in message
    assert "listed [listed-venue]" in message
    assert GROUP in message
    assert isinstance(caught.value, LookupError)


def test_no_plugins_at_all_says_none() -> None:
    with pytest.raises(PluginNotFoundError, match="installed venue plugins: none"):
        VenueRegistry(entry_points=[]).load("x")


def test_an_import_failure_names_the_distribution_and_what_to_install(site: Site) -> None:
    module = unique("needy_venue")
    source = "import surely_not_installed_dependency_xyz\nvenue = None\n"
    site.install("needy-venue", "3.1", {"needy": f"{module}:venue"}, {module: source})
    with pytest.raises(PluginLoadError) as caught:
        VenueRegistry().load("needy")
    message = str(caught.value)
    assert "needy-venue 3.1" in message
    assert "surely_not_installed_dependency_xyz" in message
    assert "pip install surely_not_installed_dependency_xyz" in message
    assert "pip install --force-reinstall needy-venue" in message
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_a_missing_plugin_module_says_reinstall(site: Site) -> None:
    module = unique("vanished_venue")
    site.install("vanished-venue", "1.0", {"vanished": f"{module}:venue"}, {})
    with pytest.raises(PluginLoadError, match=r"reinstall it \(pip install --force-reinstall vanished-venue\)"):
        VenueRegistry().load("vanished")


def test_an_error_raised_at_import_is_chained(site: Site) -> None:
    module = unique("crashing_venue")
    site.install("crashing-venue", "1.0", {"crashing": f"{module}:venue"}, {module: "raise RuntimeError('boom')\n"})
    with pytest.raises(
        PluginLoadError, match=r"crashing-venue 1\.0.*RuntimeError: boom.*pip install --upgrade crashing-venue"
    ) as caught:
        VenueRegistry().load("crashing")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_plugin_exiting_at_import_is_a_load_error_not_the_end_of_the_host(site: Site) -> None:
    module = unique("exiting_venue")
    site.install("exiting-venue", "1.0", {"exiting": f"{module}:venue"}, {module: "raise SystemExit(0)\n"})
    with pytest.raises(PluginLoadError, match=r"exiting-venue 1\.0.*SystemExit") as caught:
        VenueRegistry().load("exiting")
    assert isinstance(caught.value.__cause__, SystemExit)


def test_a_name_claimed_twice_names_both_distributions(site: Site) -> None:
    first, second = unique("first_venue"), unique("second_venue")
    site.install("first-venue", "1.0", {"shared": f"{first}:venue"}, {first: PLUGIN_MODULE.format(name="shared")})
    site.install("second-venue", "2.0", {"shared": f"{second}:venue"}, {second: PLUGIN_MODULE.format(name="shared")})
    registry = VenueRegistry()
    assert registry.names().count("shared") == 1
    with pytest.raises(PluginError) as caught:
        registry.load("shared")
    message = str(caught.value)
    assert "first-venue 1.0" in message
    assert "second-venue 2.0" in message
    assert type(caught.value) is PluginError


def test_the_same_distribution_seen_twice_is_not_a_conflict(site: Site, tmp_path: Path) -> None:
    module = unique("twice_venue")
    site.install("twice-venue", "1.0", {"twice": f"{module}:venue"}, {module: PLUGIN_MODULE.format(name="twice")})
    points = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == "twice"]
    registry = VenueRegistry(entry_points=points * 2)
    assert registry.load("twice").name == "twice"


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("incomplete", "has no attribute 'create_source'"),
        ("misnamed", "calls itself 'something-else' but is registered as 'checked'"),
    ],
)
def test_an_object_that_is_not_a_plugin_says_what_is_missing(site: Site, attribute: str, expected: str) -> None:
    module = unique("checked_venue")
    site.install(
        "checked-venue", "1.0", {"checked": f"{module}:{attribute}"}, {module: PLUGIN_MODULE.format(name="checked")}
    )
    with pytest.raises(PluginValidationError) as caught:
        VenueRegistry().load("checked")
    assert expected in str(caught.value)
    assert "checked-venue 1.0" in str(caught.value)
    assert "VenuePlugin" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("venue = object()\n", "has no attribute 'name'"),
        (
            "class V:\n    name = 5\n    description = 'd'\n    def create_source(self, **o): ...\nvenue = V()\n",
            "its 'name' is int, expected str",
        ),
        (
            "class V:\n    name = 'odd'\n    description = 'd'\n    create_source = 3\nvenue = V()\n",
            "'create_source' is not callable",
        ),
        ("class V:\n    name = 'odd'\nvenue = V()\n", "has no attribute 'description'"),
        (
            (
                "class V:\n    name = 'odd'\n    @property\n    def description(self):\n        raise KeyError('x')\n"
                "    def create_source(self, **o): ...\nvenue = V()\n"
            ),
            "reading its 'description' raised KeyError",
        ),
        (
            "class V:\n    name = 'odd'\n    description = 'd'\n    def create_source(self, **o): ...\nvenue = V\n",
            "names the class 'V'; it must name an instance",
        ),
    ],
)
def test_each_missing_part_is_named(site: Site, source: str, expected: str) -> None:
    module = unique("odd_venue")
    site.install("odd-venue", "1.0", {"odd": f"{module}:venue"}, {module: source})
    with pytest.raises(PluginValidationError, match=expected):
        VenueRegistry().load("odd")


def test_a_class_with_a_static_create_source_is_a_plugin(site: Site) -> None:
    module = unique("static_venue")
    source = (
        "class venue:\n    name = 'static'\n    description = 'd'\n"
        "    @staticmethod\n    def create_source(**options):\n        return ('source', options)\n"
    )
    site.install("static-venue", "1.0", {"static": f"{module}:venue"}, {module: source})
    plugin = VenueRegistry().load("static")
    assert plugin.create_source(account="a") == ("source", {"account": "a"})


def test_importing_reconcile_core_does_not_import_plugins() -> None:
    import subprocess

    code = "import sys, reconcile_core; print('reconcile_core.plugins' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
