"""The facade the CLI and the server use: settings in, library and releases out."""

from __future__ import annotations

import getpass
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from promptctl.registry.errors import RepositoryError
from promptctl.registry.prompts.gitstore import GitStore
from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.prompts.render_limits import DEFAULT_LIMITS, RenderLimits

if TYPE_CHECKING:
    from promptctl.registry.releases.service import ReleaseService
    from promptctl.registry.store.database import Database

# The database side (SQLAlchemy, Alembic) is imported on first use: the read commands
# (`promptctl log`, `list`, `lint`) never touch it, and it would double their start-up.


class Settings(BaseSettings):
    """Everything promptctl reads from `PROMPTCTL_*` environment variables or options."""

    model_config = SettingsConfigDict(env_prefix="PROMPTCTL_", extra="ignore")

    repo: Path = Path(".")
    root: str | None = None
    pattern: str | None = None
    branch: str | None = None
    database_url: str | None = None
    actor: str | None = None
    render_timeout_seconds: float = Field(default=DEFAULT_LIMITS.timeout_seconds, gt=0)
    render_max_output_chars: int = Field(default=DEFAULT_LIMITS.max_output_chars, gt=0)
    render_max_value_chars: int = Field(default=DEFAULT_LIMITS.max_value_chars, gt=0)

    @property
    def render_limits(self) -> RenderLimits:
        """What one render may spend (PROMPTCTL_RENDER_TIMEOUT_SECONDS, …_MAX_OUTPUT_CHARS,
        …_MAX_VALUE_CHARS)."""
        return RenderLimits(
            timeout_seconds=self.render_timeout_seconds,
            max_output_chars=self.render_max_output_chars,
            max_value_chars=self.render_max_value_chars,
        )


class Registry:
    """One prompt repository and one release database, built lazily from settings."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    @cached_property
    def library(self) -> PromptLibrary:
        s = self.settings
        return PromptLibrary(
            s.repo, root=s.root, pattern=s.pattern, branch=s.branch, limits=s.render_limits
        )

    @cached_property
    def database(self) -> Database:
        from promptctl.registry.store.database import Database

        return Database(self.database_url)

    @cached_property
    def releases(self) -> ReleaseService:
        from promptctl.registry.releases.service import ReleaseService

        return ReleaseService(self.database)

    @property
    def database_url(self) -> str:
        """The configured URL, else `.promptctl/registry.db` beside the repository."""
        from promptctl.registry.store.database import default_sqlite_url

        if self.settings.database_url:
            return self.settings.database_url
        try:
            store = GitStore(self.settings.repo)
            base = store.workdir or store.git_dir
        except RepositoryError:
            base = Path(self.settings.repo)
        return default_sqlite_url(base)

    def actor(self, given: str | None = None) -> str:
        """Who acts: the option, else PROMPTCTL_ACTOR, else git's identity, else the OS user."""
        if given:
            return given
        if self.settings.actor:
            return self.settings.actor
        try:
            identity = GitStore(self.settings.repo).user_identity()
        except RepositoryError:
            identity = None
        return identity or os.environ.get("USER") or getpass.getuser()

    def close(self) -> None:
        if "database" in self.__dict__:
            self.database.dispose()
