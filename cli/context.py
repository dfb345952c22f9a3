"""The global options, accepted before or after the subcommand, and the Options they make.

`promptctl --root patterns list` and `promptctl list --root patterns` mean the same: the
group reads the options (with their environment variables and defaults), and every
subcommand and subgroup accepts them again, hidden from its --help. A value given after
the subcommand wins over one given before it, as the innermost word a user typed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import ConfigError

if TYPE_CHECKING:
    from promptctl.registry.prompts.library import PromptLibrary
    from promptctl.registry.releases.actions import ReleaseBackend

DEFAULT_TIMEOUT = 30.0
COLOR_MODES = ("auto", "always", "never")
# Set in ctx.meta (shared by every context of one invocation) when the command runs with
# --json, so the group's error handler answers in JSON too.
JSON_ERRORS = "promptctl.json_errors"

# Each global option: its flags, the keyword of Options, and what the group's own option adds.
_GLOBALS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "--repo",
        "repo",
        {
            "envvar": "PROMPTCTL_REPO",
            "default": ".",
            "show_default": True,
            "help": "The prompt repository (or a folder inside it).",
        },
    ),
    ("--root", "root", {"help": "Folder of prompts in the repository [prompts]."}),
    ("--pattern", "pattern", {"help": "File pattern of a prompt [{name}.prompt]."}),
    ("--branch", "branch", {"help": "The tracked branch that numbers versions [main]."}),
    (
        "--database-url",
        "database_url",
        {
            "envvar": "PROMPTCTL_DATABASE_URL",
            "help": "Release database [an SQLite file .promptctl/registry.db beside the "
            "repository].",
        },
    ),
    (
        "--server",
        "server",
        {
            "envvar": "PROMPTCTL_SERVER",
            "help": "Act through this promptctl server instead of the local database.",
        },
    ),
    ("--token", "token", {"envvar": "PROMPTCTL_TOKEN", "help": "API token for --server."}),
    (
        "--timeout",
        "timeout",
        {
            "envvar": "PROMPTCTL_TIMEOUT",
            "type": click.FloatRange(min=0, min_open=True),
            "default": DEFAULT_TIMEOUT,
            "show_default": True,
            "help": "Seconds to wait for the server's answer to one request.",
        },
    ),
    (
        "--color",
        "color",
        {
            "envvar": "PROMPTCTL_COLOR",
            "type": click.Choice(COLOR_MODES),
            "default": "auto",
            "show_default": True,
            "help": "Colour the output: auto (on a terminal, unless NO_COLOR is set), always "
            "or never.",
        },
    ),
)
GLOBAL_NAMES = tuple(name for _, name, _ in _GLOBALS)
_SETTINGS_KEYS = ("repo", "root", "pattern", "branch", "database_url")
# The hidden options of a subcommand are stored under these names: a command's own
# parameter may be called `token` (token revoke TOKEN).
_HIDDEN = {name: f"global_{name}" for name in GLOBAL_NAMES}


def global_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the global options, with their environment variables and defaults, to the group."""
    for flag, name, extra in reversed(_GLOBALS):
        extra = {"default": None, **extra}
        function = click.option(flag, name, **extra)(function)
    return function


def hidden_global_params() -> list[click.Option]:
    """The global options as a subcommand accepts them: hidden, no default, no envvar."""
    params = []
    for flag, name, extra in _GLOBALS:
        kind = extra.get("type")
        params.append(click.Option([flag, _HIDDEN[name]], type=kind, default=None, hidden=True))
    return params


S = TypeVar("S", bound=Settings)


def load_settings(kind: type[S], **values: Any) -> S:
    """Build settings from `values` and PROMPTCTL_* variables, or raise ConfigError naming
    the variable and what is wrong with it (never pydantic's multi-line report)."""
    try:
        return kind(**values)
    except SettingsError as exc:  # a complex value (PROMPTCTL_PRICES) that is not JSON
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else ""
        name = f"PROMPTCTL_{field.upper()}" if field else "a PROMPTCTL_ variable"
        raise ConfigError(f"{name}: not valid JSON ({exc.__cause__ or exc})") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = [str(part) for part in error["loc"]]
        name = f"PROMPTCTL_{where[0].upper()}" if where else "a PROMPTCTL_ variable"
        field = f" ({'.'.join(where)})" if len(where) > 1 else ""
        detail = f"{name}{field}: {error['msg']}, got {error['input']!r}"
        more = exc.error_count() - 1
        raise ConfigError(detail + (f" (and {more} more)" if more else "")) from None


class Options:
    """The global options in effect, and the registry built from them on demand."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = {k: v for k, v in values.items() if v is not None}
        settings = {k: self.values[k] for k in _SETTINGS_KEYS if k in self.values}
        self.settings = load_settings(Settings, **settings)
        self.registry = Registry(self.settings)
        self.server: str | None = self.values.get("server")
        self.token: str | None = self.values.get("token")
        self.timeout: float = float(self.values.get("timeout") or DEFAULT_TIMEOUT)
        self.color: str = self.values.get("color") or "auto"

    def merged(self, later: Mapping[str, Any]) -> Options:
        """These options with those given later (after a subcommand) winning."""
        return Options({**self.values, **{k: v for k, v in later.items() if v is not None}})

    @property
    def library(self) -> PromptLibrary:
        return self.registry.library

    @cached_property
    def backend(self) -> ReleaseBackend:
        """The server's API when one is configured, else the registry itself (the local
        database): both answer the release commands alike."""
        if self.server:
            from promptctl.cli.remote import RemoteBackend

            return RemoteBackend(
                self.server, self.token, self.registry.actor(), timeout=self.timeout
            )
        return self.registry

    def color_flag(self) -> bool | None:
        """click's colour setting: True (always), False (never, or NO_COLOR), None (auto)."""
        if self.color == "always":
            return True
        if self.color == "never" or os.environ.get("NO_COLOR"):
            return False
        return None


pass_options = click.make_pass_decorator(Options)


def adopt_later_options(ctx: click.Context) -> None:
    """Take this context's hidden global options out of its params; when any was given,
    this context (and those below it) use the merged Options."""
    later = {name: ctx.params.pop(_HIDDEN[name], None) for name in GLOBAL_NAMES}
    given = {k: v for k, v in later.items() if v is not None}
    if not given:
        return
    options = ctx.find_object(Options)
    if options is None:  # not run under the promptctl group (a test's bare command)
        return
    merged = options.merged(given)
    ctx.obj = merged
    ctx.color = merged.color_flag()
    ctx.call_on_close(merged.registry.close)


def options_in(ctx: click.Context) -> Options:
    """The Options a context means, from its own params and its parents' (for completion,
    where no command callback has run)."""
    chain = []
    node: click.Context | None = ctx
    while node is not None:
        chain.append(node)
        node = node.parent
    values: dict[str, Any] = {}
    for node in reversed(chain):
        for name in GLOBAL_NAMES:
            for key in (name, _HIDDEN[name]):
                if node.params.get(key) is not None:
                    values[name] = node.params[key]
    return Options(values)


class PromptctlCommand(click.Command):
    """A subcommand that also accepts the global options, and answers errors in JSON
    when run with --json."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(hidden_global_params())

    def invoke(self, ctx: click.Context) -> Any:
        adopt_later_options(ctx)
        if ctx.params.get("as_json"):
            ctx.meta[JSON_ERRORS] = True
        return super().invoke(ctx)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text(
            "Global options (--repo, --root, --pattern, --branch, --database-url, --server, "
            "--token, --timeout, --color) may come before or after the command; see "
            "'promptctl --help'."
        )


class PromptctlSubgroup(click.Group):
    """A group below `promptctl` (env, db, token): takes the global options too."""

    command_class = PromptctlCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(hidden_global_params())

    def invoke(self, ctx: click.Context) -> Any:
        adopt_later_options(ctx)
        return super().invoke(ctx)
