"""The `promptctl` command: each command parses, makes one registry call and prints."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from promptctl.cli.completion import complete_name, complete_ref, complete_spec
from promptctl.cli.context import (
    JSON_ERRORS,
    Options,
    PromptctlCommand,
    PromptctlSubgroup,
    global_options,
    pass_options,
)
from promptctl.cli.output import colored_diff, emit_json, rendered_text, report_error, table
from promptctl.registry.core import WORKTREE
from promptctl.registry.errors import RegistryError, UsageError
from promptctl.registry.prompts.variables import coerce_text

__all__ = ["JSON_OPTION", "Options", "cli", "main", "pass_options", "split_ref"]

# Modules whose commands register themselves on the group when imported, and the commands
# each adds. They pull in SQLAlchemy, Alembic and httpx, so a command imports only its own
# module (`status` needs neither the server nor the review report); --help imports them all.
# A name missing here is still found: an unknown command imports every module before it is
# refused (tests/cli/test_startup.py checks the map against what the modules register).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "promptctl.cli.analyze": ("analyze",),
    "promptctl.cli.ci": ("ci",),
    "promptctl.cli.metrics": ("metrics",),
    "promptctl.cli.releases": (
        "bundle",
        "canary",
        "db",
        "env",
        "history",
        "promote",
        "resolve",
        "rollback",
        "status",
    ),
    "promptctl.cli.review": ("review",),
    "promptctl.cli.rollouts": ("rollout",),
    "promptctl.cli.serve": ("serve", "token"),
    "promptctl.cli.webhooks": ("webhook",),
}
_MODULE_OF = {name: module for module, names in COMMAND_MODULES.items() for name in names}

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


class PromptctlGroup(click.Group):
    """Turns every registry error into one line on stderr (a JSON object under --json) and
    exit code 1; its commands take the global options before or after their name."""

    command_class = PromptctlCommand
    group_class = PromptctlSubgroup

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Errors may come before the command reads its --json: a bad PROMPTCTL_* variable
        # (the settings are read first), an unknown option or a bad value. A script that
        # asked for JSON still gets them as JSON.
        if "--json" in (args[: args.index("--")] if "--" in args else args):
            ctx.meta[JSON_ERRORS] = True
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RegistryError as exc:
            report_error(exc, as_json=ctx.meta.get(JSON_ERRORS, False))
            sys.exit(1)
        except click.UsageError as exc:
            if not ctx.meta.get(JSON_ERRORS):
                raise
            report_error(exc, as_json=True)
            sys.exit(exc.exit_code)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _MODULE_OF:
            importlib.import_module(_MODULE_OF[cmd_name])
            command = super().get_command(ctx, cmd_name)
        if command is None:
            _import_command_modules()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        _import_command_modules()
        return super().list_commands(ctx)


def _import_command_modules() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module)


@click.group(cls=PromptctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.version_option(package_name="promptctl")
@click.pass_context
def cli(ctx: click.Context, **values: Any) -> None:
    """promptctl: a git-backed prompt registry and release manager.

    The options below may also follow the command (`promptctl list --root patterns`); given
    in both places, the one after the command wins.
    """
    ctx.obj = Options(values)
    ctx.color = ctx.obj.color_flag()
    ctx.call_on_close(ctx.obj.registry.close)


def split_ref(spec: str) -> tuple[str, str | None]:
    """Split `name@ref` into its parts (the ref may itself contain '@', as in HEAD@{1})."""
    name, sep, ref = spec.partition("@")
    if sep and not ref:
        raise UsageError(f"'{spec}': nothing after '@' (expected a version, e.g. {name}@v2)")
    return name, ref or None


def diff_refs(
    spec: str, first: str | None, second: str | None
) -> tuple[str, str | None, str | None]:
    """Read diff's arguments, NAME [A [B]] with NAME@A and B or NAME@B allowed: the name
    and the two references."""
    name, ref = split_ref(spec)
    refs = [r for r in (ref, first, second) if r is not None]
    if len(refs) > 2:
        raise UsageError(f"diff takes two versions of '{name}', got {len(refs)}: {refs}")
    if ref is not None and first is None:
        return name, ref, None
    refs: list[str | None] = [ref] if ref is not None else []
    for given in (first, second):
        if given is None:
            continue
        other, sep, rest = given.partition("@")
        if sep and rest and not other.startswith(("HEAD", "@")) and "{" not in given:
            if other != name:
                raise UsageError(
                    f"diff compares two versions of one prompt: '{name}' and '{other}'"
                )
            given = rest
        refs.append(given)
    refs += [None, None]
    return name, refs[0], refs[1]


@cli.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@JSON_OPTION
@pass_options
def init_command(options: Options, directory: str, as_json: bool) -> None:
    """Create a prompt repository in DIRECTORY, or add promptctl.toml to an existing one."""
    result = options.registry.init_project(Path(directory))
    if as_json:
        emit_json(result)
        return
    verb = "Created a git repository" if result["created_repository"] else "Using the repository"
    click.echo(f"{verb} at {result['repository']}")
    for path in result["written"]:
        click.echo(f"  wrote {path}")
    for path in result["kept"]:
        click.echo(f"  kept  {path} (already there)")
    click.echo("Next: commit the files, then try 'promptctl list' and 'promptctl lint'.")


@cli.command("list")
@click.option("--rev", default=None, help="List at a git revision instead of the working tree.")
@JSON_OPTION
@pass_options
def list_command(options: Options, rev: str | None, as_json: bool) -> None:
    """List the prompts with their version, digest, kind and model."""
    library = options.library
    entries = []
    for name, version in library.load_all(rev).items():
        if isinstance(version, RegistryError):
            entries.append({"prompt": name, "error": str(version)})
        else:
            entries.append(version.to_json(content=False))
    if as_json:
        emit_json(entries)
        return
    skipped = library.skipped(rev)
    if not entries:
        root = library.layout.root or "the repository root"
        click.echo(f"No prompts under {root} (pattern {library.layout.pattern}).")
        _echo_skipped(skipped)
        return
    rows = []
    for e in entries:
        if "error" in e:
            rows.append([e["prompt"], "-", "-", "-", "-", f"INVALID: {e['error']}"])
        else:
            version = e["label"] if e["version"] else "(new)"
            rows.append(
                [
                    e["prompt"],
                    version,
                    e["digest"][:12],
                    e["kind"],
                    e["model"] or "-",
                    e["description"] or "",
                ]
            )
    table(["NAME", "VERSION", "DIGEST", "KIND", "MODEL", "DESCRIPTION"], rows)
    _echo_skipped(skipped)
    # Said when it explains something: another branch than main, or unnumbered prompts.
    unnumbered = any("error" not in e and not e["version"] for e in entries)
    if library.branch_note and (library.layout.branch != "main" or unnumbered):
        click.echo(f"({library.branch_note})", err=True)


def _echo_skipped(skipped: list[tuple[str, str]]) -> None:
    """Name the files shaped like prompts that are not, so none is left out in silence."""
    if skipped:
        click.echo(f"Skipped {len(skipped)} file(s) shaped like a prompt:")
        for path, reason in skipped:
            click.echo(f"  {path}: {reason}")


@cli.command("show")
@click.argument("spec", metavar="NAME[@REF]", shell_complete=complete_spec)
@click.option("--body-only", is_flag=True, help="Print only the template body.")
@JSON_OPTION
@pass_options
def show_command(options: Options, spec: str, body_only: bool, as_json: bool) -> None:
    """Show a prompt version: where it comes from, its settings and its file."""
    name, ref = split_ref(spec)
    version = options.library.get(name, ref)
    if as_json:
        emit_json(version.to_json())
        return
    if body_only:
        click.echo(version.prompt.body, nl=False)
        return
    first = version.first_commit
    click.echo(f"# {version.name} {version.label}  digest {version.short_digest}")
    click.echo(
        f"# from {version.source}" + (f" ({version.commit.summary})" if version.commit else "")
    )
    if first:
        click.echo(
            f"# first appeared in {first.short} by {first.author} on "
            f"{first.time:%Y-%m-%d %H:%M} ({first.summary})"
        )
    elif version.source == WORKTREE or version.commit:
        click.echo(f"# not on branch '{options.library.layout.branch}' yet: no version number")
    if version.partials:
        click.echo(f"# partials: {', '.join(sorted(version.partials))}")
    click.echo(f"# file: {version.prompt.path}")
    click.echo(version.prompt.text, nl=not version.prompt.text.endswith("\n"))


@cli.command("log")
@click.argument("name", shell_complete=complete_name)
@JSON_OPTION
@pass_options
def log_command(options: Options, name: str, as_json: bool) -> None:
    """Show a prompt's versions on the tracked branch, newest first."""
    records, index = options.library.history(name)
    current = index.current_digest(name)
    events = index.events.get(name, [])
    if as_json:
        emit_json(
            {
                "prompt": name,
                "branch": index.branch,
                "current": current,
                "versions": [
                    {
                        "version": r.number,
                        "label": r.label,
                        "digest": r.digest,
                        "commit": r.commit.to_json(),
                    }
                    for r in reversed(records)
                ],
                "changes": [
                    {
                        "commit": e.commit.to_json(),
                        "digest": e.digest,
                        "version": e.number,
                        "moved_from": e.moved_from,
                    }
                    for e in reversed(events)
                ],
            }
        )
        return
    rows = []
    for r in reversed(records):
        mark = f"<- {index.branch}" if r.digest == current else ""
        rows.append(
            [
                r.label,
                r.digest[:12],
                r.commit.short,
                f"{r.commit.time:%Y-%m-%d %H:%M}",
                r.commit.author,
                r.commit.summary[:60],
                mark,
            ]
        )
    table(["VERSION", "DIGEST", "COMMIT", "DATE", "AUTHOR", "MESSAGE", ""], rows)
    for e in reversed(events):
        if e.moved_from:
            click.echo(
                f"(moved from {e.moved_from} in {e.commit.short} on "
                f"{e.commit.time:%Y-%m-%d %H:%M}: {e.commit.summary[:60]})"
            )
    if current is None:
        click.echo(f"(removed from {index.branch} in {events[-1].commit.short})")


@cli.command("render")
@click.argument("spec", metavar="NAME[@REF]", shell_complete=complete_spec)
@click.option(
    "--var",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A variable; typed by the prompt's input (JSON for arrays and objects).",
)
@click.option("--vars-file", type=click.File("r"), help="A JSON object of variables.")
@click.option("--sample", type=int, default=None, help="Render the prompt's N-th sample (1-based).")
@JSON_OPTION
@pass_options
def render_command(
    options: Options,
    spec: str,
    pairs: tuple[str, ...],
    vars_file: Any,
    sample: int | None,
    as_json: bool,
) -> None:
    """Render a prompt version with variables, as chat messages or text."""
    name, ref = split_ref(spec)
    version = options.library.get(name, ref)
    variables = _collect_variables(version.prompt, pairs, vars_file, sample)
    rendered = version.render(variables)
    if rendered.ignored:
        names = ", ".join(rendered.ignored)
        click.echo(f"warning: {name}@{version.label} does not declare {names}: ignored", err=True)
    if as_json:
        emit_json(
            {
                "prompt": name,
                "version": version.number,
                "label": version.label,
                "digest": version.digest,
                **rendered.to_json(),
            }
        )
        return
    click.echo(rendered_text(rendered))


def _collect_variables(
    prompt: Any, pairs: tuple[str, ...], vars_file: Any, sample: int | None
) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    if sample is not None:
        samples = prompt.samples
        if not 1 <= sample <= len(samples):
            raise UsageError(f"--sample {sample}: {prompt.path} has {len(samples)} sample(s)")
        variables.update(samples[sample - 1])
    if vars_file is not None:
        try:
            loaded = json.load(vars_file)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{vars_file.name}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
        if not isinstance(loaded, dict):
            raise UsageError(f"{vars_file.name}: must hold a JSON object of variables")
        variables.update(loaded)
    inputs = prompt.inputs or {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--var '{pair}': expected KEY=VALUE")
        variables[key] = coerce_text(inputs.get(key), raw)
    return variables


@cli.command("diff")
@click.argument("name", metavar="NAME[@A]", shell_complete=complete_spec)
@click.argument("old_ref", required=False, metavar="[A]", shell_complete=complete_ref)
@click.argument("new_ref", required=False, metavar="[B]", shell_complete=complete_ref)
@click.option(
    "--env",
    "environment",
    default=None,
    help="Compare what runs in this environment with A (default HEAD): what promoting A does.",
)
@JSON_OPTION
@pass_options
def diff_command(
    options: Options,
    name: str,
    old_ref: str | None,
    new_ref: str | None,
    environment: str | None,
    as_json: bool,
) -> None:
    """Compare two versions of a prompt (default: the last commit against the working tree).

    A and B are version references: vN, a digest prefix or a git revision, given apart
    (`diff NAME v2 v5`) or as NAME@REF (`diff NAME@v2 NAME@v5`). With --env, the stable
    version released there is compared with A (default HEAD), and the breaking changes are
    those the release gate finds against every version serving there.
    """
    name, old_ref, new_ref = diff_refs(name, old_ref, new_ref)
    result = options.registry.diff(name, old_ref, new_ref, environment=environment)
    if as_json:
        emit_json(result.to_json())
        return
    old, new = result.old, result.new
    if result.unchanged:
        click.echo(f"{name}: no change ({old.label if old else '-'})")
        return
    click.echo(f"{name}: {old.label if old else '(none)'} -> {new.label if new else '(removed)'}")
    for change in result.front_matter:
        click.echo(f"  ~ {change.key}: {_short(change.old)} -> {_short(change.new)}")
    for var in result.variables_added:
        click.echo(f"  + variable {var}")
    for var in result.variables_removed:
        click.echo(f"  - variable {var}")
    for var in result.variables_changed:
        click.echo(f"  ~ variable {var}")
    for conflict in result.breaking:
        click.echo(f"  ! breaking {conflict}")
    if result.body:
        click.echo("")
        click.echo(colored_diff(result.body), nl=False)
    for text in result.partials.values():
        click.echo("")
        click.echo(colored_diff(text), nl=False)


def _short(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


@cli.command("lint")
@click.argument("names", nargs=-1, shell_complete=complete_name)
@click.option("--rev", default=None, help="Lint a git revision instead of the working tree.")
@JSON_OPTION
@pass_options
def lint_command(options: Options, names: tuple[str, ...], rev: str | None, as_json: bool) -> None:
    """Check prompts for broken YAML, templates, variables, includes and samples."""
    run = options.registry.lint(names, rev)
    if as_json:
        emit_json(
            {
                "checked": run.checked,
                "errors": run.errors,
                "warnings": run.warnings,
                "findings": [f.to_json() for f in run.findings],
            }
        )
    else:
        for finding in run.findings:
            click.echo(str(finding))
        skipped = sum(1 for f in run.findings if f.code == "skipped-file")
        also = f", {skipped} file(s) skipped" if skipped else ""
        click.echo(
            f"{run.checked} prompt(s) checked{also}: {run.errors} error(s), "
            f"{run.warnings} warning(s)"
        )
    if run.errors:
        sys.exit(1)


def main() -> None:
    cli(prog_name="promptctl")
