"""Settings: everything promptctl reads from `PROMPTCTL_*` environment variables or options.

The server's settings (server/settings.py) extend them with how it listens and guards
itself; `Registry` is built from either.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from promptctl.registry.prompts.render_limits import DEFAULT_LIMITS, RenderLimits


class ModelPriceSetting(BaseModel):
    """USD per million tokens for one model (an entry of PROMPTCTL_PRICES)."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Settings(BaseSettings):
    """Everything promptctl reads from `PROMPTCTL_*` environment variables or options."""

    model_config = SettingsConfigDict(env_prefix="PROMPTCTL_", extra="ignore")

    repo: Path = Path(".")
    root: str | None = None
    pattern: str | None = None
    branch: str | None = None
    # The template engine of prompt files that name none (PROMPTCTL_TEMPLATE: jinja2,
    # plain or mustache); promptctl.toml's `template`, else jinja2, when unset.
    template: str | None = None
    database_url: str | None = None
    actor: str | None = None
    render_timeout_seconds: float = Field(default=DEFAULT_LIMITS.timeout_seconds, gt=0)
    render_max_output_chars: int = Field(default=DEFAULT_LIMITS.max_output_chars, gt=0)
    render_max_value_chars: int = Field(default=DEFAULT_LIMITS.max_value_chars, gt=0)
    # Model -> USD per million tokens; wins over the maintained prices (genai-prices).
    prices: dict[str, ModelPriceSetting] = Field(default_factory=dict)
    # A link to a trace in the team's tracing tool, e.g.
    # "https://tempo.example.com/trace/{trace_id}": shown beside the trace ids of metrics.
    trace_url_template: str | None = None
    # How long metrics are kept (registry.metrics.retention): raw events (and with them
    # the event ids that make a retried delivery count once), minute and hour rollups.
    # A duration such as 7d, 36h or 2w; a bare number is days.
    retention_events: timedelta = timedelta(days=7)
    retention_minute_rollups: timedelta = timedelta(days=30)
    retention_hour_rollups: timedelta = timedelta(days=400)

    @field_validator(
        "retention_events", "retention_minute_rollups", "retention_hour_rollups", mode="before"
    )
    @classmethod
    def _duration(cls, value: Any) -> Any:
        """Read 7d, 36h, 2w, 90m or a bare number of days."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(days=value)
        if isinstance(value, str):
            text = value.strip().lower()
            if re.fullmatch(r"\d+(\.\d+)?", text):
                return timedelta(days=float(text))
            found = _DURATION.fullmatch(text)
            if found is None:
                raise ValueError(f"{value!r} is not a duration such as 7d, 36h, 2w or 90m")
            return timedelta(seconds=int(found[1]) * _UNITS[found[2]])
        return value

    @model_validator(mode="after")
    def _retentions_nest(self) -> Settings:
        """Hour rollups must outlive minute rollups: reads switch to hour rows where minute
        rows are gone, and a whole hour of any window is read from its hour row."""
        for name in ("retention_events", "retention_minute_rollups", "retention_hour_rollups"):
            if getattr(self, name) < timedelta(hours=1):
                raise ValueError(f"PROMPTCTL_{name.upper()} must be at least an hour")
        if self.retention_hour_rollups < self.retention_minute_rollups:
            raise ValueError(
                "PROMPTCTL_RETENTION_HOUR_ROLLUPS "
                f"({_days(self.retention_hour_rollups)}) must be at least "
                f"PROMPTCTL_RETENTION_MINUTE_ROLLUPS ({_days(self.retention_minute_rollups)})"
            )
        return self

    @property
    def render_limits(self) -> RenderLimits:
        """What one render may spend (PROMPTCTL_RENDER_TIMEOUT_SECONDS, …_MAX_OUTPUT_CHARS,
        …_MAX_VALUE_CHARS)."""
        return RenderLimits(
            timeout_seconds=self.render_timeout_seconds,
            max_output_chars=self.render_max_output_chars,
            max_value_chars=self.render_max_value_chars,
        )


_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def _days(span: timedelta) -> str:
    days = span / timedelta(days=1)
    return f"{days:g} day" + ("" if days == 1 else "s")
