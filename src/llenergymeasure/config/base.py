"""What every config model shares: unknown keys refused, frozen, and numbers that refuse
booleans."""

from __future__ import annotations

import types
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = ["NumbersNotBooleans", "StrictModel"]


def _is_number(annotation: Any) -> bool:
    """True for ``int``, ``float``, a Literal of numbers, or an optional/union of those."""
    if annotation in (int, float):
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return any(
            isinstance(arg, int | float) and not isinstance(arg, bool)
            for arg in get_args(annotation)
        )
    if origin in (Union, types.UnionType):
        return any(_is_number(arg) for arg in get_args(annotation))
    return False


class NumbersNotBooleans(BaseModel):
    """Numeric fields refuse booleans.

    YAML reads ``yes``/``true`` as booleans and pydantic's lax mode would turn them into
    1, so ``n_prompts: true`` would silently run one prompt. Numbers stay lax otherwise
    (an int is a valid float; ``"8"`` is a valid int).
    """

    _number_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._number_fields = frozenset(
            name for name, f in cls.model_fields.items() if _is_number(f.annotation)
        )

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name in cls._number_fields:
            raise ValueError(f"expected a number, got the boolean `{str(value).lower()}`")
        return value


class StrictModel(NumbersNotBooleans):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
