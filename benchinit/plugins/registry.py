"""The plugin registry: one pluggy manager over built-ins, installed plugins and plugin files.

Load order (later sources cannot shadow earlier names; a clash is an error naming both):

1. built-in modules (``BUILTIN_PLUGINS``), registered exactly like third-party plugins;
2. installed distributions through the entry-point group ``benchinit`` (off when
   ``BENCHINIT_DISABLE_PLUGIN_AUTOLOAD`` is set, as tests do);
3. ``.py`` files: ``--plugin FILE`` and a study's ``plugins = [...]``.

``BENCHINIT_BLOCK_PLUGINS`` (comma-separated) skips the named plugins: an entry point's name,
its distribution's name as ``benchinit list`` shows it (any case, ``-`` or ``_``: every
plugin of that distribution), a built-in module or a plugin file's name. A name that
matches no plugin is an error (a typo would otherwise block nothing, silently).
A plugin that fails to import, implements a hook that does not exist, or raises from a
hook is an error naming the plugin and the cause.

Each plugin has a version (in every cell id that names it) and a code fingerprint
(:meth:`Registry.code`, benchinit.fingerprint): a distribution's whole top-level package,
else the module that holds it (a built-in's, a plugin file, an in-memory plugin's). A stored
cell is reused only while the code that computes it is unchanged (benchinit.results.freshness).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import sys
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Literal, TypeVar, overload

import pluggy

from benchinit import fingerprint
from benchinit._version import __version__
from benchinit.errors import PluginError, choices_text, did_you_mean, plugin_failed
from benchinit.plugins import hookspecs
from benchinit.plugins.descriptors import (
    Activation,
    Bound,
    Dataset,
    Descriptor,
    Initializer,
    Loss,
    Optimizer,
)
from benchinit.plugins.guard import plugin_code
from benchinit.plugins.model_kind import KINDS
from benchinit.plugins.specs import bind_params, label_of, parse_spec, unknown_name

ENTRY_POINT_GROUP = "benchinit"
ENV_BLOCK = "BENCHINIT_BLOCK_PLUGINS"
ENV_NO_AUTOLOAD = "BENCHINIT_DISABLE_PLUGIN_AUTOLOAD"

BUILTIN_PLUGINS = (
    "benchinit.builtin.initializers",
    "benchinit.builtin.activations",
    "benchinit.builtin.losses",
    "benchinit.builtin.optimizers",
    "benchinit.builtin.datasets",
    "benchinit.engine.zoo",  # the built-in models (mlp, cnn): they are the engine's
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from."""

    name: str  # the name it is registered (and blocked) by
    origin: Literal["builtin", "distribution", "file", "object"]
    source: str  # "builtin", "dist==version", or a file path
    version: str  # part of every cell id: benchinit's, the distribution's, or the file's hash

    def describe(self) -> str:
        """How error messages name this plugin."""
        if self.origin == "builtin":
            return f"built-in plugin '{self.name}'"
        if self.origin == "distribution":
            return f"plugin '{self.name}' from {self.source}"
        if self.origin == "file":
            return f"plugin file '{self.source}'"
        return f"plugin '{self.name}'"


D = TypeVar("D", bound=Descriptor)


@dataclass(frozen=True)
class Entry(Generic[D]):
    """One registered descriptor and the plugin that provided it."""

    descriptor: D
    plugin: PluginInfo

    @property
    def kind(self) -> str:
        return self.descriptor.kind


@dataclass(frozen=True)
class RegistrySpec:
    """What identifies a registry, and rebuilds it in another process (a worker).

    Batches carry this, never the live object: in the process that made the registry,
    :func:`registry_from` finds the object itself; elsewhere it rebuilds it from the files
    and checks their content hashes, so a plugin file edited mid-run is an error, not a
    silent mix of two versions.
    """

    files: tuple[str, ...] = ()
    autoload: bool | None = None
    blocked: tuple[str, ...] | None = None
    digests: tuple[str, ...] = ()  # the files' content hashes, in order
    objects: tuple[str, ...] = ()  # in-memory plugins: this process alone has them


def _dist_key(name: str) -> str:
    """A distribution's name as pip compares them: 'Benchinit_LSUV' -> 'benchinit-lsuv'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_blocked() -> tuple[str, ...]:
    raw = os.environ.get(ENV_BLOCK, "")
    return tuple(name.strip() for name in raw.split(",") if name.strip())


class Registry:
    """Every initializer, activation, loss, optimizer and dataset that can be named."""

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]] = (),
        *,
        autoload: bool | None = None,
        blocked: Iterable[str] | None = None,
        objects: Sequence[tuple[object, str]] = (),
    ) -> None:
        """Load every plugin. ``objects`` registers in-memory plugins (``(obj, name)``)."""
        self.files = tuple(dict.fromkeys(str(Path(f).resolve()) for f in files))
        self.autoload = (not os.environ.get(ENV_NO_AUTOLOAD)) if autoload is None else autoload
        self.blocked = frozenset(_env_blocked() if blocked is None else blocked)
        self._blocked_arg = None if blocked is None else tuple(blocked)
        self.pm = pluggy.PluginManager("benchinit")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._codes: dict[str, str | Callable[[], str]] = {}  # a fingerprint, or how to make it
        for module_name in BUILTIN_PLUGINS:
            self._register(
                importlib.import_module(module_name),
                PluginInfo(module_name, "builtin", "builtin", __version__),
            )
        if self.autoload:
            self._load_entry_points()
        self._digests: list[str] = []
        for path in self.files:
            self._load_file(Path(path))
        self._objects = tuple(f"{name}@{id(obj)}" for obj, name in objects)
        for obj, name in objects:
            self._register(obj, PluginInfo(name, "object", name, getattr(obj, "__version__", "0")))
        self._check_blocked({name for _, name in objects})
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            plugin_name = self.pm.get_name(exc.plugin)
            who = (
                self.plugins[plugin_name].describe()
                if plugin_name in self.plugins
                else repr(exc.plugin)
            )
            raise PluginError(
                f"{who} implements a hook that does not exist: {exc}. "
                f"Valid hooks: {', '.join(sorted(self._hook_names()))}."
            ) from exc
        self._entries: dict[str, dict[str, Entry[Any]]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            self._collect(kind)
        _LIVE[self.spec()] = self

    # --- loading ---------------------------------------------------------------------------

    def _register(self, plugin: object, info: PluginInfo) -> None:
        if info.name in self.blocked:
            return
        if info.name in self.plugins:
            raise PluginError(
                f"two plugins are named '{info.name}': {self.plugins[info.name].describe()} "
                f"and {info.describe()}"
            )
        try:
            with plugin_code():  # pluggy reads the plugin's attributes: its code may run
                self.pm.register(plugin, name=info.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{info.describe()} is invalid: {exc}") from exc
        except ValueError as exc:  # pluggy: the same object registered twice
            raise PluginError(f"{info.describe()}: {exc}") from exc
        except BaseException as exc:  # sys.exit and os._exit in a plugin too
            if not plugin_failed(exc):
                raise
            raise PluginError(
                f"{info.describe()} failed while registering: {type(exc).__name__}: {exc}"
            ) from exc
        self.plugins[info.name] = info
        self._codes[info.name] = functools.partial(_plugin_code, plugin, info.origin)

    def _load_entry_points(self) -> None:
        for ep in sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            if ep.name in self.blocked or _dist_key(dist_name) in self._blocked_dists:
                continue
            version = dist.version if dist is not None else "0"
            source = f"{dist_name}=={version}"
            try:
                with plugin_code():
                    plugin = ep.load()
            except BaseException as exc:  # sys.exit and os._exit in a plugin too
                if not plugin_failed(exc):
                    raise
                raise PluginError(
                    f'Error importing plugin "{ep.name}" (entry point {ep.value} of {source}): '
                    f"{type(exc).__name__}: {exc}. Set {ENV_BLOCK}={ep.name} to skip it."
                ) from exc
            self._register(plugin, PluginInfo(ep.name, "distribution", source, version))

    @property
    def _blocked_dists(self) -> set[str]:
        return {_dist_key(name) for name in self.blocked}

    def _check_blocked(self, objects: set[str]) -> None:
        """Refuse a blocked name that matches no plugin: built-in, installed, file or object."""
        known = {*BUILTIN_PLUGINS, *objects, *(Path(f).stem for f in self.files)}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            known |= {ep.name, _dist_key(dist.metadata["Name"]) if dist is not None else ep.name}
        files = set(self.files)
        unknown = sorted(
            n for n in self.blocked if n not in known | files and _dist_key(n) not in known
        )
        if unknown:
            raise PluginError(
                f"{ENV_BLOCK} names '{unknown[0]}', which matches no plugin."
                f"{did_you_mean(unknown[0], known)} Valid names: an entry point's or its "
                "distribution's (benchinit list shows them), a built-in module's or a plugin "
                f"file's: {choices_text(known)}."
            )

    def _load_file(self, path: Path) -> None:
        if str(path) in self.blocked or path.stem in self.blocked:
            return
        if not path.is_file():
            raise PluginError(f"plugin file '{path}' does not exist")
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()[:12]
        self._digests.append(digest)
        module_name = "benchinit_plugin_" + re.sub(r"\W", "_", path.stem) + "_" + digest
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"plugin file '{path}' is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            with plugin_code():
                spec.loader.exec_module(module)
        except BaseException as exc:  # sys.exit and os._exit in a plugin too
            if not plugin_failed(exc):
                raise
            del sys.modules[module_name]
            raise PluginError(
                f'Error importing plugin file "{path}": {type(exc).__name__}: {exc}'
            ) from exc
        self._register(module, PluginInfo(str(path), "file", str(path), digest))

    def _hook_names(self) -> list[str]:
        return [name for name in dir(self.pm.hook) if name.startswith("benchinit_")]

    def _collect(self, kind: str) -> None:
        cls = KINDS[kind]
        hook_name = hookspecs.HOOKS_BY_KIND[kind]
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():  # registration order
            info = self.plugins[impl.plugin_name]
            try:
                with plugin_code():
                    provided = list(impl.function() or ())
            except BaseException as exc:  # sys.exit and os._exit in a plugin too
                if not plugin_failed(exc):
                    raise
                raise PluginError(
                    f"{info.describe()} failed in {hook_name}(): {type(exc).__name__}: {exc}"
                ) from exc
            for descriptor in provided:
                if not isinstance(descriptor, cls):
                    raise PluginError(
                        f"{info.describe()}: {hook_name}() must return "
                        f"{cls.__name__} descriptors, got {descriptor!r}"
                    )
                known = self._entries[kind].get(descriptor.name)
                if known is not None:
                    raise PluginError(
                        f"duplicate {kind} '{descriptor.name}': provided by "
                        f"{known.plugin.describe()} and by {info.describe()}"
                    )
                self._entries[kind][descriptor.name] = Entry(descriptor, info)

    # --- lookups ---------------------------------------------------------------------------

    def spec(self) -> RegistrySpec:
        """What identifies this registry (see :class:`RegistrySpec`)."""
        return RegistrySpec(
            self.files, self.autoload, self._blocked_arg, tuple(self._digests), self._objects
        )

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> list[Entry[Any]]:
        kinds = [kind] if kind else list(KINDS)
        return [self._entries[k][n] for k in kinds for n in sorted(self._entries[k])]

    @overload
    def get(self, kind: Literal["initializer"], name: str) -> Entry[Initializer]: ...
    @overload
    def get(self, kind: Literal["activation"], name: str) -> Entry[Activation]: ...
    @overload
    def get(self, kind: Literal["loss"], name: str) -> Entry[Loss]: ...
    @overload
    def get(self, kind: Literal["optimizer"], name: str) -> Entry[Optimizer]: ...
    @overload
    def get(self, kind: Literal["dataset"], name: str) -> Entry[Dataset]: ...
    @overload
    def get(self, kind: str, name: str) -> Entry[Any]: ...

    def get(self, kind: str, name: str) -> Entry[Any]:
        """The entry for ``name``; a SpecError with a "did you mean" when unknown."""
        try:
            return self._entries[kind][name]
        except KeyError:
            raise unknown_name(kind, name, self.names(kind)) from None

    @overload
    def bind(self, kind: Literal["initializer"], value: Any) -> Bound[Initializer]: ...
    @overload
    def bind(self, kind: Literal["activation"], value: Any) -> Bound[Activation]: ...
    @overload
    def bind(self, kind: Literal["loss"], value: Any) -> Bound[Loss]: ...
    @overload
    def bind(self, kind: Literal["optimizer"], value: Any) -> Bound[Optimizer]: ...
    @overload
    def bind(self, kind: Literal["dataset"], value: Any) -> Bound[Dataset]: ...
    @overload
    def bind(self, kind: str, value: Any) -> Bound[Any]: ...

    def bind(self, kind: str, value: Any) -> Bound[Any]:
        """Resolve a spec (string or inline table) of ``kind`` into a Bound descriptor."""
        name, args, kwargs = parse_spec(value)
        descriptor = self.get(kind, name).descriptor
        params = bind_params(descriptor, args, kwargs)
        return Bound(descriptor, params, label_of(descriptor, params))

    def version(self, kind: str, name: str) -> str:
        return self.get(kind, name).plugin.version

    def code(self, plugin: str) -> str:
        """The fingerprint of plugin ``plugin``'s source, made once per registry when first
        asked ("" for one without Python source)."""
        code = self._codes[plugin]
        if callable(code):
            code = self._codes[plugin] = code()
        return code

    def hook(self) -> Any:
        """pluggy's hook relay, for hooks beyond the descriptor kinds (report sections)."""
        return self.pm.hook


def _plugin_code(plugin: object, origin: str) -> str:
    """A distribution's fingerprint is its whole top-level package (found from the loaded
    entry-point object), anything else's the module that holds it."""
    if origin != "distribution":
        return fingerprint.object_code(plugin)
    module = plugin if isinstance(plugin, ModuleType) else inspect.getmodule(plugin)
    return fingerprint.package_code(module.__name__) if module is not None else ""


# Registries alive in this process, by spec: batches find the study's own object here.
_LIVE: weakref.WeakValueDictionary[RegistrySpec, Registry] = weakref.WeakValueDictionary()


def registry_from(spec: RegistrySpec) -> Registry:
    """The registry a batch names: the live object in this process, else rebuilt once."""
    live = _LIVE.get(spec)
    return live if live is not None else _rebuild(spec)


@functools.lru_cache(maxsize=8)
def _rebuild(spec: RegistrySpec) -> Registry:
    if spec.objects:
        names = ", ".join(o.split("@")[0] for o in spec.objects)
        raise PluginError(f"in-memory plugins ({names}) exist only in the process that made them")
    registry = Registry(spec.files, autoload=spec.autoload, blocked=spec.blocked)
    if registry.spec() != spec:
        raise PluginError(
            "plugin files changed while the run was going on ("
            + ", ".join(spec.files)
            + "); run again"
        )
    return registry
