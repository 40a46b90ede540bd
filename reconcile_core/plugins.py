"""Venue plugin discovery through the ``reconcile_core.venues`` entry-point group.

A venue plugin is a distribution that declares, in its ``pyproject.toml``::

    [project.entry-points."reconcile_core.venues"]
    myvenue = "my_package:venue"

where ``my_package.venue`` satisfies :class:`reconcile_core.typing.VenuePlugin`
(``name``, ``description``, ``create_source(**options)``).

Discovery is lazy: nothing is read when this module is imported, entry points
are listed on first use, and a plugin is imported only when it is loaded. The
registry is read-only. Every failure explains itself, in the manner of
pluggy and fsspec:

* an unknown name lists the installed plugins (:class:`PluginNotFoundError`);
* an import failure names the distribution and what to install
  (:class:`PluginLoadError`, chained to the original error);
* a name claimed by two distributions names both (:class:`PluginError`);
* an object that does not satisfy the protocol says which attribute is wrong
  (:class:`PluginValidationError`).

``reconcile_core/__init__.py`` does not import this module.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final, cast

import attrs

from .errors import PluginError, PluginLoadError, PluginNotFoundError, PluginValidationError
from .typing import VenuePlugin

__all__ = ["GROUP", "VenueEntry", "VenueRegistry", "available_venues", "default_registry", "load_venue"]

#: The entry-point group venue plugins register under.
GROUP: Final = "reconcile_core.venues"


@attrs.frozen(kw_only=True)
class VenueEntry:
    """One declared venue plugin: its name, where it lives, who declared it."""

    name: str
    #: ``"module:attribute"``, as declared.
    value: str
    #: The declaring distribution's name, or ``None`` when unknown.
    distribution: str | None
    version: str | None
    entry_point: importlib.metadata.EntryPoint = attrs.field(eq=False, repr=False)

    @property
    def origin(self) -> str:
        """``"dist-name 1.0 (module:attr)"`` for messages."""
        if self.distribution is None:
            return f"an unknown distribution ({self.value})"
        version = f" {self.version}" if self.version else ""
        return f"{self.distribution}{version} ({self.value})"

    @classmethod
    def from_entry_point(cls, entry_point: importlib.metadata.EntryPoint) -> VenueEntry:
        dist = entry_point.dist
        name = dist.metadata["Name"] if dist is not None else None
        return cls(
            name=entry_point.name,
            value=entry_point.value,
            distribution=name or None,
            version=dist.version if dist is not None else None,
            entry_point=entry_point,
        )


def _discover() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=GROUP)


class VenueRegistry:
    """The venue plugins visible to this process, read lazily.

    ``entry_points`` replaces discovery (tests pass their own); by default
    the ``reconcile_core.venues`` group of the installed distributions is
    read on first use.
    """

    def __init__(
        self,
        entry_points: Iterable[importlib.metadata.EntryPoint]
        | Callable[[], Iterable[importlib.metadata.EntryPoint]]
        | None = None,
    ) -> None:
        if entry_points is None:
            self._source: Callable[[], Iterable[importlib.metadata.EntryPoint]] = _discover
        elif callable(entry_points):
            self._source = entry_points
        else:
            given = tuple(entry_points)
            self._source = lambda: given
        self._entries: Mapping[str, tuple[VenueEntry, ...]] | None = None
        self._loaded: dict[str, VenuePlugin] = {}

    def __repr__(self) -> str:
        if self._entries is None:
            return "<VenueRegistry (not read yet)>"
        return f"<VenueRegistry {sorted(self._entries)}>"

    @property
    def entries(self) -> Mapping[str, tuple[VenueEntry, ...]]:
        """Name -> the declarations of that name (more than one is a conflict). Read-only."""
        if self._entries is None:
            found: dict[str, list[VenueEntry]] = {}
            for entry_point in self._source():
                if entry_point.group not in (GROUP, None, ""):
                    continue
                entry = VenueEntry.from_entry_point(entry_point)
                claims = found.setdefault(entry.name, [])
                # A distribution seen twice on sys.path declares the same thing twice: one claim.
                if not any(c.value == entry.value and c.distribution == entry.distribution for c in claims):
                    claims.append(entry)
            self._entries = MappingProxyType({name: tuple(claims) for name, claims in sorted(found.items())})
        return self._entries

    def names(self) -> tuple[str, ...]:
        """The installed venue names, sorted."""
        return tuple(self.entries)

    def describe(self) -> str:
        """``"a [dist-a], b [dist-b]"``, or ``"none"``."""
        if not self.entries:
            return "none"
        return ", ".join(
            f"{name} [{' / '.join(c.distribution or '?' for c in claims)}]" for name, claims in self.entries.items()
        )

    def entry(self, name: str) -> VenueEntry:
        """The single declaration of ``name``; raises when it is missing or claimed twice."""
        claims = self.entries.get(name)
        if not claims:
            raise PluginNotFoundError(
                f"no venue plugin named {name!r}; installed venue plugins: {self.describe()}. "
                f"Plugins register under the entry-point group {GROUP!r}: install the distribution that provides "
                f"{name!r}."
            )
        if len(claims) > 1:
            who = " and ".join(c.origin for c in claims)
            raise PluginError(
                f"the venue plugin name {name!r} is claimed by more than one distribution: {who}. "
                "Uninstall all but one of them."
            )
        return claims[0]

    def load(self, name: str) -> VenuePlugin:
        """Import, validate and return the plugin registered as ``name`` (cached)."""
        cached = self._loaded.get(name)
        if cached is not None:
            return cached
        entry = self.entry(name)
        try:
            plugin = entry.entry_point.load()
        except (Exception, SystemExit) as exc:  # a module calling sys.exit() on import must not end the host
            raise PluginLoadError(_load_failure(entry, exc)) from exc
        checked = _validate(entry, plugin)
        self._loaded[name] = checked
        return checked


def _load_failure(entry: VenueEntry, exc: BaseException) -> str:
    message = f"venue plugin {entry.name!r} from {entry.origin} failed to import: {type(exc).__name__}: {exc}"
    dist = entry.distribution
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        own_module = entry.value.split(":")[0].split(".")[0]
        if top == own_module:
            fix = f"its module is missing: reinstall it (pip install --force-reinstall {dist or top})"
        else:
            fix = f"it needs the module {exc.name!r}: install the package that provides it (pip install {top})"
            if dist:
                fix += f", or reinstall {dist} with its dependencies (pip install --force-reinstall {dist})"
        return f"{message}. The plugin is installed but {fix}."
    if dist:
        return f"{message}. Reinstall or upgrade it: pip install --upgrade {dist}."
    return f"{message}."


_REQUIRED: Final = (("name", str), ("description", str))


def _attribute(plugin: object, attribute: str, what: str) -> object:
    """``plugin.attribute``; a missing one, or a property that raises, is a :class:`PluginValidationError`."""
    failed: str | None = None
    try:
        return getattr(plugin, attribute)
    except AttributeError:
        failed = f"the loaded object has no attribute {attribute!r}"
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's property is its code: any failure is its fault
        failed = f"reading its {attribute!r} raised {type(exc).__name__}"
    raise PluginValidationError(f"{what} does not satisfy {_PROTOCOL}: {failed}")


_PROTOCOL: Final = "reconcile_core.typing.VenuePlugin"


def _validate(entry: VenueEntry, plugin: object) -> VenuePlugin:
    what = f"venue plugin {entry.name!r} from {entry.origin}"
    protocol = _PROTOCOL
    if isinstance(plugin, type) and inspect.isfunction(inspect.getattr_static(plugin, "create_source", None)):
        # A class whose create_source needs an instance (a static or class method would do).
        raise PluginValidationError(
            f"{what} does not satisfy {protocol}: the entry point names the class {plugin.__name__!r}; "
            "it must name an instance (e.g. `venue = MyVenue()`)"
        )
    for attribute, kind in _REQUIRED:
        value = _attribute(plugin, attribute, what)
        if not isinstance(value, kind):
            raise PluginValidationError(
                f"{what} does not satisfy {protocol}: its {attribute!r} is {type(value).__name__}, "
                f"expected {kind.__name__}"
            )
    if not callable(_attribute(plugin, "create_source", what)):
        raise PluginValidationError(f"{what} does not satisfy {protocol}: its 'create_source' is not callable")
    declared = _attribute(plugin, "name", what)
    if declared != entry.name:
        raise PluginValidationError(
            f"{what} does not satisfy {protocol}: it calls itself {declared!r} but is registered as {entry.name!r}"
        )
    return cast("VenuePlugin", plugin)


_default: VenueRegistry | None = None


def default_registry() -> VenueRegistry:
    """The process-wide registry of installed plugins (created, not read, on first call)."""
    global _default  # noqa: PLW0603 - one lazily made registry per process
    if _default is None:
        _default = VenueRegistry()
    return _default


def available_venues(*, registry: VenueRegistry | None = None) -> tuple[str, ...]:
    """The names of the installed venue plugins, sorted."""
    return (registry or default_registry()).names()


def load_venue(name: str, *, registry: VenueRegistry | None = None) -> VenuePlugin:
    """The venue plugin registered as ``name``.

    Raises :class:`PluginNotFoundError`, :class:`PluginLoadError`,
    :class:`PluginValidationError`, or :class:`PluginError` for a name claimed
    by two distributions.
    """
    return (registry or default_registry()).load(name)
