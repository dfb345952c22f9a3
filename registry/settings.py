"""Settings: everything promptctl reads from `PROMPTCTL_*` environment variables or options.

The server's settings (server/settings.py) extend them with how it listens and guards
itself; `Registry` is built from either.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
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

    @property
    def render_limits(self) -> RenderLimits:
        """What one render may spend (PROMPTCTL_RENDER_TIMEOUT_SECONDS, …_MAX_OUTPUT_CHARS,
        …_MAX_VALUE_CHARS)."""
        return RenderLimits(
            timeout_seconds=self.render_timeout_seconds,
            max_output_chars=self.render_max_output_chars,
            max_value_chars=self.render_max_value_chars,
        )
