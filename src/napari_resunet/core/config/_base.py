"""What every config object shares: the dict round-trip, the checks its fields
use, and the names of the choices they take."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

NormKind = Literal["group", "instance", "batch", "none"]
BlendKind = Literal["gaussian", "constant"]
CompileMode = Literal["auto", "always", "never"]
Precision = Literal["auto", "float32", "bfloat16"]
LabelMode = Literal["auto", "classes", "foreground", "instances"]
Task = Literal["semantic", "instance"]
SeedKind = Literal["interior", "distance"]

_C = TypeVar("_C", bound="_ConfigBase")


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, choices))}."
        )


def _as_int_tuple(name: str, value: Any, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    try:
        out = tuple(int(v) for v in value)
    except TypeError as err:
        raise ValueError(
            f"{name} must be a sequence of integers, got {value!r}."
        ) from err
    if any(v < 1 for v in out):
        raise ValueError(f"{name} must hold positive integers, got {out}.")
    return out


def _as_spatial_shape(name: str, value: Any) -> tuple[int, ...] | None:
    """An optional tile or patch shape: ``None``, or 2 or 3 positive sizes."""
    out = _as_int_tuple(name, value, allow_none=True)
    if out is not None and len(out) not in (2, 3):
        raise ValueError(f"{name} needs 2 or 3 sizes, got {out}.")
    return out


@dataclass(frozen=True)
class _ConfigBase:
    """Shared dict round-trip for the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (tuples become lists) suitable for JSON/checkpoints."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Build from a dict made by ``to_dict``; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(
                f"Unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}."
            )
        return cls(**data)

    def replace(self: _C, **changes: Any) -> _C:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)
