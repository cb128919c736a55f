"""One parser for the environment variables the settings read. A value that does not parse
stops the process with an error that names the variable, the form it expects and what it got,
instead of a bare ValueError from deep inside `settings.py`. An empty value counts as unset."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
N = TypeVar("N", int, float)


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name} must be {expected}, not {value!r}.")


def env_str(
    name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None
) -> str:
    """A text value; with no default, one must be set."""
    value = _raw(name, environ)
    if value is not None:
        return value
    if default is None:
        raise ImproperlyConfigured(f"{name} must be set.")
    return default


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """1/true/yes/on or 0/false/no/off, any case."""
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise _bad(name, value, "one of 1, true, yes, on, 0, false, no, off")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """A whole number (underscores allowed: 1_000_000), at least `minimum`."""
    return _number(name, default, int, "a whole number", minimum, environ)


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A finite number (seconds, usually), at least `minimum`."""
    return _number(name, default, float, "a finite number", minimum, environ)


def _number(
    name: str,
    default: N,
    parse: Callable[[str], N],
    form: str,
    minimum: float | None,
    environ: Mapping[str, str] | None,
) -> N:
    value = _raw(name, environ)
    if value is None:
        return default
    expected = form + (f" of at least {minimum:g}" if minimum is not None else "")
    try:
        number = parse(value)
    except ValueError:
        raise _bad(name, value, expected) from None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise _bad(name, value, expected)
    return number


def env_choice(
    name: str, default: str, choices: tuple[str, ...], *, environ: Mapping[str, str] | None = None
) -> str:
    """One of `choices`, exactly."""
    value = _raw(name, environ)
    if value is None:
        return default
    if value not in choices:
        raise _bad(name, value, ", ".join(choices[:-1]) + f" or {choices[-1]}")
    return value
