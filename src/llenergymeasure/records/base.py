"""What every record shares: frozen pydantic models, and a plugin's availability."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

__all__ = ["Availability", "FrozenRecord"]


@dataclass(frozen=True)
class Availability:
    """Whether a plugin (engine or energy sampler) can run on this host, and why not."""

    available: bool
    reason: str
    version: str | None = None


class FrozenRecord(BaseModel):
    """A record as written to disk: immutable, and no field it does not declare."""

    model_config = ConfigDict(extra="forbid", frozen=True)
