"""`promptctl serve` and `promptctl token`: running the service and guarding it."""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import click

from promptctl.cli.context import load_settings
from promptctl.cli.main import JSON_OPTION, Options, cli, pass_options
from promptctl.cli.output import emit_json, table
from promptctl.registry.auth import SCOPES
from promptctl.registry.errors import UsageError

log = logging.getLogger("promptctl.server")


@cli.command("serve")
@click.option("--host", envvar="PROMPTCTL_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="PROMPTCTL_PORT", type=int, default=8080, show_default=True)
@click.option(
    "--tokens/--no-tokens",
    envvar="PROMPTCTL_TOKENS",
    default=False,
    help="Require an API token on every request [off].",
)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--create",
    is_flag=True,
    help="Create the SQLite database when its file does not exist (else refuse: a moved "
    "file must not silently become an empty database).",
)
@pass_options
def serve_command(
    options: Options, host: str, port: int, tokens: bool, log_level: str, create: bool
) -> None:
    """Run the service (REST API, OpenAPI at /docs) with uvicorn."""
    import uvicorn

    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    given = options.settings.model_dump(exclude_none=True)
    settings = load_settings(
        ServerSettings, **{**given, "host": host, "port": port, "tokens": tokens}
    )
    settings.check_exposure()  # create_app's own rule, said before the database check
    database = options.registry.missing_database_file()
    if database is not None and not create:
        raise UsageError(
            f"no database at {database}: run 'promptctl db upgrade' to create it (or serve "
            "with --create); if it was moved, point --database-url at it"
        )
    listener = bind_port(host, port)  # a busy port is said at once, not after startup
    app = create_app(settings)
    if not tokens:
        banner = (
            "WARNING: promptctl is serving WITHOUT API tokens: any local process can read "
            "prompts and change releases. Start with --tokens for anything shared."
        )
        click.secho(banner, fg="red", bold=True, err=True)
    click.echo(
        f"promptctl serving {settings.repo.resolve()} on http://{host}:{port} "
        f"(database {app.state.ctx.registry.database.safe_url}, docs at /docs)",
        err=True,
    )
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    bound_server(config).run(sockets=[listener])


def bound_server(config: Any) -> Any:
    """uvicorn's server for a socket bound beforehand, saying where it listens as uvicorn
    does when it binds itself (it keeps quiet about sockets it is given)."""
    import uvicorn

    class BoundServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and sockets:
                host, port = sockets[0].getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                logging.getLogger("uvicorn.error").info(
                    "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, port
                )

    return BoundServer(config)


def bind_port(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port as uvicorn would, or say clearly why it cannot."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}: {exc.strerror}") from exc
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use: stop what listens there, or serve with "
                "--port (PROMPTCTL_PORT)"
            ) from exc
        raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror}") from exc
    listener.set_inheritable(True)
    return listener


@cli.group("token")
def token_group() -> None:
    """Create, list and revoke API tokens (stored hashed in the release database)."""


@token_group.command("create")
@click.option("--name", required=True, help="Who or what uses the token.")
@click.option("--scope", required=True, type=click.Choice(SCOPES))
@click.option("--env", "environment", default=None, help="Limit the token to one environment.")
@JSON_OPTION
@pass_options
def token_create(
    options: Options, name: str, scope: str, environment: str | None, as_json: bool
) -> None:
    """Create a token and print its secret once."""
    secret, info = options.registry.tokens.create(name, scope, environment)
    if as_json:
        emit_json({"token": secret, **info.to_json()})
        return
    click.echo(secret)
    click.echo(
        f"token '{name}' ({scope}{', ' + environment if environment else ''}) created; "
        "the secret above is shown only now",
        err=True,
    )


@token_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@JSON_OPTION
@pass_options
def token_list(options: Options, include_revoked: bool, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    tokens = options.registry.tokens.list(include_revoked=include_revoked)
    if as_json:
        emit_json([t.to_json() for t in tokens])
        return
    table(
        ["ID", "NAME", "PREFIX", "SCOPE", "ENVIRONMENT", "CREATED", "REVOKED"],
        [
            [
                t.id,
                t.name,
                t.prefix + "…",
                t.scope,
                t.environment or "*",
                f"{t.created_at:%Y-%m-%d %H:%M}",
                f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
            ]
            for t in tokens
        ],
    )


@token_group.command("revoke")
@click.argument("token")
@JSON_OPTION
@pass_options
def token_revoke(options: Options, token: str, as_json: bool) -> None:
    """Revoke a token by name, id or secret prefix; servers stop accepting it within a second."""
    revoked = options.registry.tokens.revoke(token)
    if as_json:
        emit_json([t.to_json() for t in revoked])
        return
    for info in revoked:
        click.echo(f"revoked token {info.id} '{info.name}' ({info.scope})")
