"""Strict validation of OpenLineage events against the official model.

The OpenLineage project generates its Python client's classes
(`openlineage.client.generated`, from PyPI's `openlineage-python`) from the
spec's JSON schemas, and each class names its schema with `_get_schema()`.
The JSON schema files themselves are not published to any package registry
that CI reaches, so this module validates against that generated model
instead, stricter than the schema in two ways: a key the official class
does not declare is an error (the schema allows extra facet properties), and
every facet's `_schemaURL` must be exactly the URL of the facet version the
client ships.

`validate(event)` raises `Invalid` with the JSON path of the first problem.
"""

import enum
import importlib
import pkgutil
import types
import typing

import attr
import openlineage.client.generated as generated
from openlineage.client.generated.base import RunEvent
from openlineage.client.serde import Serde


class Invalid(Exception):
    pass


def _registry():
    found = {}
    for module in pkgutil.iter_modules(generated.__path__):
        mod = importlib.import_module(f"{generated.__name__}.{module.name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and attr.has(obj) and "_get_schema" in vars(obj):
                found[obj._get_schema()] = obj
    return found


REGISTRY = _registry()
FACET_BASES = tuple(
    getattr(importlib.import_module(f"{generated.__name__}.base"), name)
    for name in ("RunFacet", "JobFacet", "DatasetFacet", "InputDatasetFacet", "OutputDatasetFacet")
)


def _build(cls, data, path):
    if not isinstance(data, dict):
        raise Invalid(f"{path}: expected an object for {cls.__name__}, got {data!r}")
    if issubclass(cls, FACET_BASES):
        url = data.get("_schemaURL")
        concrete = REGISTRY.get(url)
        if concrete is None:
            raise Invalid(f"{path}: _schemaURL {url!r} is not a facet version the official client knows")
        if not issubclass(concrete, cls):
            raise Invalid(f"{path}: {concrete.__name__} is not a {cls.__name__}")
        cls = concrete
    hints = typing.get_type_hints(cls)
    by_key = {f.name: f for f in attr.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        field = by_key.get(key)
        if field is None:
            raise Invalid(f"{path}.{key}: {cls.__name__} has no such field")
        if not field.init:
            if value != cls._get_schema():
                raise Invalid(f"{path}.{key}: {value!r} is not {cls._get_schema()!r}")
            continue
        kwargs[field.alias] = _convert(hints[field.name], value, f"{path}.{key}")
    for field in attr.fields(cls):
        if field.init and field.default is attr.NOTHING and field.alias not in kwargs:
            raise Invalid(f"{path}: {cls.__name__} requires {field.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise Invalid(f"{path}: {cls.__name__}: {e}") from e


def _convert(hint, value, path):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except Invalid as e:
                errors.append(str(e))
        raise Invalid("; ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(f"{path}: expected an array, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"{path}: expected an object, got {value!r}")
        _, item = typing.get_args(hint)
        return {k: _convert(item, v, f"{path}.{k}") for k, v in value.items()}
    if hint is typing.Any:
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError as e:
            raise Invalid(f"{path}: {value!r} is not one of {[m.value for m in hint]}") from e
    if isinstance(hint, type) and attr.has(hint):
        return _build(hint, value, path)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    else:
        raise Invalid(f"{path}: no check for type {hint!r}")
    if not ok:
        raise Invalid(f"{path}: expected {hint.__name__}, got {value!r}")
    return value


def _without_empty(value):
    """Drops empty objects and arrays: the official serializer writes the
    defaults of optional fields (`facets: {}`, `fields: []`) that an event
    may leave out."""
    if isinstance(value, dict):
        pruned = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def validate(event):
    """Builds the official RunEvent from `event`; it must serialize back to
    the same JSON, up to empty optional fields."""
    built = _build(RunEvent, event, "$")
    again = Serde.to_dict(built)
    if _without_empty(again) != _without_empty(event):
        raise Invalid(f"$: the official model serializes the event differently:\n{again}\n!=\n{event}")
    return built
