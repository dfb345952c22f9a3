"""Shell completion of prompt names, environments and versions (click's shell_complete).

Completion runs without any command callback, so the repository and database come from
the options typed so far (`options_in`). Nothing here may fail or write: a repository that
cannot be read, or a database that does not exist yet, completes to nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import click
from click.shell_completion import CompletionItem

from promptctl.cli.context import Options, options_in

Items = list[CompletionItem]
Completer = Callable[[click.Context, click.Parameter, str], Items]


def _quietly(produce: Callable[[Options], Iterable[str]]) -> Completer:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> Items:
        options = options_in(ctx)
        try:
            candidates = list(dict.fromkeys(produce(options)))
        except Exception:  # a completion never shows a traceback in the user's shell
            return []
        finally:
            options.registry.close()
        return [CompletionItem(c) for c in candidates if c.startswith(incomplete)]

    return complete


def prompt_names(options: Options) -> list[str]:
    """The prompts of the working tree, and those on the tracked branch."""
    library = options.library
    names = set(library.list())
    # No commits yet, or no such branch: the working tree is enough.
    with contextlib.suppress(Exception):
        names |= set(library.list(library.layout.branch))
    return sorted(names)


def version_labels(options: Options, name: str) -> list[str]:
    """A prompt's numbered versions, newest first (v3, v2, v1)."""
    records, _ = options.library.history(name)
    return [r.label for r in reversed(records)]


def environment_names(options: Options) -> list[str]:
    """The environments of the server, or of the local database when it exists."""
    if not options.server and options.registry.missing_database_file() is not None:
        return []
    return [e.name for e in options.backend.environments()]


def complete_name(ctx: click.Context, param: click.Parameter, incomplete: str) -> Items:
    """Complete a prompt name."""
    return _quietly(prompt_names)(ctx, param, incomplete)


def complete_spec(ctx: click.Context, param: click.Parameter, incomplete: str) -> Items:
    """Complete NAME, or after NAME@ the prompt's versions as NAME@vN."""
    name, sep, _ = incomplete.partition("@")
    if not sep:
        return complete_name(ctx, param, incomplete)
    return _quietly(lambda o: [f"{name}@{v}" for v in version_labels(o, name)])(
        ctx, param, incomplete
    )


def complete_ref(ctx: click.Context, param: click.Parameter, incomplete: str) -> Items:
    """Complete a version (vN) of the prompt the command names."""
    spec = ctx.params.get("name") or ctx.params.get("spec")
    if not spec and ctx.args:  # an option still waiting for its value left it unparsed
        spec = ctx.args[0]
    if not spec:
        return []
    name = spec.partition("@")[0]
    return _quietly(lambda o: version_labels(o, name))(ctx, param, incomplete)


def complete_environment(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Complete an environment name."""
    return _quietly(environment_names)(ctx, param, incomplete)
