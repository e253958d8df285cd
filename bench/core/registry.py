"""The one registry pattern: name → object, a decorator to add, entry points for plugins.

Models, datasets, samplers, feature backbones and metric families are each a
:class:`Registry`, in the style of timm's ``register_model``/``create_model``: built-in entries
register themselves when their module is imported; a third-party distribution adds its own
through the registry's entry-point group (each entry point names the object to register, or a
module whose import registers its own). An unknown name is one :class:`UsageError` line that
lists the known ones.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from aebench.core.errors import UsageError

T = TypeVar("T")
#: "name version" of each distribution whose entry points were imported in this process
_DISTRIBUTIONS: dict[str, None] = {}


class Registry(Generic[T]):
    """Named objects of one kind (``kind`` is how error messages call them)."""

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        from_entry_point: Callable[[Any], T] | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        #: turns what an entry point names into a registry entry (default: as it is)
        self.from_entry_point = from_entry_point
        self._items: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """``@registry.register("name")`` as a decorator, or ``registry.register(name, obj)``.

        Registering the same object again is a no-op; a different object under a taken name is
        refused (a plugin replaces an entry by unregistering it first)."""

        def add(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def load_plugins(self, reload: bool = False) -> None:
        """Import the entry points of :attr:`entry_point_group` (once, unless ``reload``)."""
        if self._plugins_loaded and not reload:
            return
        self._plugins_loaded = True
        if self.entry_point_group is None:
            return
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
                if ep.dist is not None:
                    _DISTRIBUTIONS[f"{ep.dist.name} {ep.dist.version}"] = None
                if ep.name not in self._items and not _is_module(obj):
                    convert = self.from_entry_point or (lambda found: found)
                    self._items[ep.name] = convert(obj)
            except Exception as err:  # another distribution's code: one line that names it
                detail = (str(err).strip().splitlines() or [""])[0]
                raise UsageError(
                    f"{self.kind} plugin {ep.name!r} ({ep.value}, entry-point group "
                    f"{self.entry_point_group}): {type(err).__name__}: {detail}"
                ) from None

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._items)

    def get(self, name: str) -> T:
        self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names()) or "(none)"
            raise UsageError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs in registration order (plugins after built-ins)."""
        self.load_plugins()
        return self.registered()

    def registered(self) -> list[tuple[str, T]]:
        """The entries registered so far, without loading plugins: for checks made while
        entries register themselves, when a plugin that imports the registering package
        could not load yet (and would come before the built-ins)."""
        return list(self._items.items())


def _is_module(obj: object) -> bool:
    return type(obj).__name__ == "module"


def plugin_distributions() -> list[str]:
    """``name version`` of each installed distribution whose aebench entry points this process
    imported, in import order: plugin code that no aebench commit holds."""
    return list(_DISTRIBUTIONS)
