"""Turn pydantic validation errors into one readable ConfigError."""

from __future__ import annotations

import difflib
import unicodedata
from typing import Any

from pydantic import BaseModel, ValidationError

from llenergymeasure.errors import ConfigError

__all__ = ["config_error_from_validation", "did_you_mean", "printable"]

# A key or value quoted in an error message is cut at this length: the message stays a line.
_MAX_SHOWN = 60


def printable(text: object, limit: int = _MAX_SHOWN) -> str:
    """``text`` made safe to quote in a one-line message: control and line-break
    characters escaped (``\\n``), and cut to ``limit`` characters with an ellipsis."""
    shown = "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
        else ch
        for ch in str(text)[: limit + 1]
    )
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def did_you_mean(word: object, choices: list[str]) -> str:
    """`` (did you mean `x`?)`` for a close match among choices, else an empty string."""
    matches = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" (did you mean `{matches[0]}`?)" if matches else ""


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the nested model reached by ``loc`` (the parent of an unknown key)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _unwrap_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap_model(annotation: Any) -> Any:
    """The BaseModel inside ``X | None``, or the annotation itself."""
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _dotted(loc: tuple[str | int, ...]) -> str:
    return printable(
        ".".join(str(p) for p in loc if not str(p).startswith("function-after")), 2 * _MAX_SHOWN
    )


def config_error_from_validation(
    err: ValidationError, model: type[BaseModel], *, origin: str = "config"
) -> ConfigError:
    """One ConfigError listing every unknown key (with suggestions) and every bad value."""
    unknown: list[str] = []
    problems: list[str] = []
    for item in err.errors():
        loc = tuple(p for p in item["loc"] if not str(p).startswith(("function-", "model-")))
        if item["type"] == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            parent = loc[:-1]
            suggestion = did_you_mean(key, _fields_at(model, parent))
            unknown.append(f"`{_dotted(loc)}`{suggestion}")
            continue
        message = printable(str(item["msg"]).removeprefix("Value error, "), 4 * _MAX_SHOWN)
        where = _dotted(loc)
        problems.append(f"`{where}`: {message}" if where else message)
    parts: list[str] = []
    if unknown:
        noun = "key" if len(unknown) == 1 else "keys"
        parts.append(f"unknown {noun} " + ", ".join(unknown))
    parts.extend(problems)
    return ConfigError(
        f"invalid {origin}: " + "; ".join(parts),
        hint="the accepted fields are listed in docs/configuration.md",
    )
