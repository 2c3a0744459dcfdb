"""Plugin specs: ``"sgd(lr=0.1, momentum=0.9)"`` or ``{name = "sgd", lr = 0.1}`` -> Bound.

A spec names a plugin and sets some of its parameters. Parameters are checked against the
plugin's signature (keyword-only arguments of its ``fn``) before anything runs: unknown names
get a "did you mean", values are checked against the annotation (``float`` accepts integers,
``Literal`` lists its choices), and required parameters must be given.

The label of a spec, used in tables and figures, is the name followed by the parameters that
differ from their defaults, in signature order: ``normal(std=0.01)``; ``normal(std=1)`` is
``normal``. Two specs with the same label are the same configuration.

A parameter value is never inf or NaN, whatever its annotation: no built-in parameter needs
one, and a spec's values go to ``meta.json``, which must stay valid JSON (JSON has no
Infinity or NaN). A plugin that wants "no limit" says so with a default of its own.
"""

from __future__ import annotations

import ast
import inspect
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from benchinit.errors import choices_text, did_you_mean
from benchinit.plugins.descriptors import Descriptor, Param

_SPELLINGS = {"true": True, "false": False, "True": True, "False": False, "None": None}


class SpecError(ValueError):
    """A spec that cannot be parsed or bound; the caller adds the file and key."""


def parse_spec(value: object) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """Split a spec into (name, positional values, keyword values)."""
    if isinstance(value, Mapping):
        rest = dict(value)
        name = rest.pop("name", None)
        if not isinstance(name, str):
            raise SpecError(f"an inline table spec needs a string 'name', got {dict(value)!r}")
        return name, (), rest
    if not isinstance(value, str):
        raise SpecError(
            f'expected a spec such as "normal(std=0.01)" or an inline table, got {value!r}'
        )
    text = value.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise SpecError(
            f"cannot parse {value!r}: write a name, or name(key=value, ...) "
            'with literal values, for example "normal(std=0.01)"'
        ) from None
    if isinstance(node, ast.Name):
        return node.id, (), {}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise SpecError(f"cannot parse {value!r}: expected name or name(key=value, ...)")
    try:
        args = tuple(_literal(a) for a in node.args)
        kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg is not None}
    except ValueError:
        raise SpecError(
            f"cannot parse {value!r}: parameter values must be literals "
            "(numbers, strings in quotes, true/false)"
        ) from None
    if any(k.arg is None for k in node.keywords):
        raise SpecError(f"cannot parse {value!r}: '**' is not allowed in a spec")
    names = [k.arg for k in node.keywords]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:  # a dict keeps the last: the first value would be lost silently
        raise SpecError(f"cannot parse {value!r}: '{twice}' given twice; give it once")
    return node.func.id, args, kwargs


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id in _SPELLINGS:
        return _SPELLINGS[node.id]
    return ast.literal_eval(node)


def bind_params(descriptor: Descriptor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict:
    """Every parameter of ``descriptor`` resolved from a spec's values and the defaults."""
    params = descriptor.parameters()
    names = list(params)
    if len(args) > len(names):
        raise SpecError(
            f"{descriptor.kind} '{descriptor.name}' takes at most {len(names)} parameters "
            f"({', '.join(names) or 'none'}), got {len(args)} positional values"
        )
    given = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in params:
            valid = ", ".join(names) or "none"
            raise SpecError(
                f"{descriptor.kind} '{descriptor.name}' has no parameter '{key}'."
                f"{did_you_mean(key, names)} Its parameters: {valid}."
            )
        if key in given:
            raise SpecError(f"parameter '{key}' of '{descriptor.name}' is given twice")
        given[key] = value
    resolved = {}
    for name, param in params.items():
        if name in given:
            resolved[name] = coerce(given[name], param, descriptor)
        elif param.required:
            raise SpecError(
                f"{descriptor.kind} '{descriptor.name}' needs parameter '{name}', "
                f'for example "{descriptor.name}({name}=...)"'
            )
        else:
            resolved[name] = param.default
    return resolved


def coerce(value: Any, param: Param, descriptor: Descriptor) -> Any:
    """``value`` checked against ``param``'s annotation (ints widen to float); inf and NaN
    are refused whatever the annotation (see the module's docstring)."""
    if not _finite(value):
        raise SpecError(
            f"parameter '{param.name}' of {descriptor.kind} '{descriptor.name}' must be "
            f"finite, got {value!r}"
        )
    if param.annotation is inspect.Parameter.empty:
        return value
    ok, result = _coerce(value, param.annotation)
    below = (
        ok
        and param.minimum is not None
        and isinstance(result, int | float)
        and not isinstance(result, bool)
        and not result >= param.minimum
    )
    if ok and not below:
        return result
    at_least = f", at least {format_value(param.minimum)}" if param.minimum is not None else ""
    raise SpecError(
        f"parameter '{param.name}' of {descriptor.kind} '{descriptor.name}' "
        f"must be {describe_type(param.annotation)}{at_least}, got {value!r}"
    )


def _finite(value: Any) -> bool:
    """No inf or NaN in ``value`` (nor in its lists and tables)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    return True


def _coerce(value: Any, annotation: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return (value in typing.get_args(annotation)), value
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        # An exact type match wins over a widening one (2 stays int in `int | float`).
        for member in members:
            if isinstance(member, type) and type(value) is member:
                return True, value
        for member in members:
            ok, result = _coerce(value, member)
            if ok:
                return True, result
        return False, value
    if annotation is type(None):
        return value is None, value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value
        return True, float(value)
    if annotation is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if annotation in (bool, str):
        return isinstance(value, annotation), value
    if annotation is Any:
        return True, value
    return True, value  # an annotation we cannot check: the plugin checks it itself


def describe_type(annotation: Any) -> str:
    """'a float', "one of 'fan_in', 'fan_out'", ... for error messages."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "none"
    names = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def format_value(value: Any) -> str:
    """A parameter value as written in a label: 1.0 -> '1', 'fan_out' -> "'fan_out'"."""
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return repr(value)


def label_of(descriptor: Descriptor, params: Mapping[str, Any]) -> str:
    defaults = descriptor.parameters()
    changed = [
        f"{k}={format_value(v)}"
        for k, v in params.items()
        if k in defaults and (defaults[k].required or defaults[k].default != v)
    ]
    return f"{descriptor.name}({', '.join(changed)})" if changed else descriptor.name


def unknown_name(kind: str, name: str, known: list[str]) -> SpecError:
    return SpecError(
        f"unknown {kind} '{name}'.{did_you_mean(name, known)} Valid choices: {choices_text(known)}."
    )
