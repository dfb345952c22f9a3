"""The facade the CLI and the server use: settings in, one `Registry` out.

`Registry` owns the prompt library (git), the release database and the services over it
(releases, metrics, API tokens) and the serving cache, each built on first use. The
transports ask it, and only it: a command or a route parses, makes one call here (or on
a service it hands out) and formats the answer. Release actions go through `perform`,
which also refreshes the serving cache when this process serves.
"""

from __future__ import annotations

import getpass
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from promptctl.registry.errors import PromptNotFound, RepositoryError, RepositoryUnreadable
from promptctl.registry.prompts.gitstore import GitStore
from promptctl.registry.prompts.library import WORKTREE, PromptLibrary
from promptctl.registry.prompts.lint import ERROR
from promptctl.registry.releases.actions import (
    DEFAULT_REF,
    Abort,
    Complete,
    Promote,
    Ramp,
    ReleaseAction,
    Rollback,
)
from promptctl.registry.settings import ModelPriceSetting, Settings

if TYPE_CHECKING:
    from promptctl.registry.analysis.report import CanaryReport
    from promptctl.registry.auth import TokenInfo, TokenService
    from promptctl.registry.metrics.prices import PriceBook
    from promptctl.registry.metrics.retention import PruneReport
    from promptctl.registry.metrics.series import MetricSeries, Traffic
    from promptctl.registry.metrics.service import MetricsService
    from promptctl.registry.metrics.summary import MetricsSummary
    from promptctl.registry.prompts.diff import PromptDiff
    from promptctl.registry.prompts.follow import GitStatus, RemoteFollower
    from promptctl.registry.prompts.lint import Finding
    from promptctl.registry.prompts.promptversion import PromptVersion
    from promptctl.registry.prompts.rendering import Rendered
    from promptctl.registry.releases.actions import PromoteAll, ReleaseBackend
    from promptctl.registry.releases.audit import AuditQuery
    from promptctl.registry.releases.batch import Promotion, PromptPromotion
    from promptctl.registry.releases.routing import Variant
    from promptctl.registry.releases.service import ReleaseService
    from promptctl.registry.releases.serving import ServingCache
    from promptctl.registry.releases.values import EnvironmentInfo, LogEntry, ReleaseState
    from promptctl.registry.review.report import ReviewReport
    from promptctl.registry.rollouts.controller import Controller
    from promptctl.registry.rollouts.policy import Policy, PolicyBook
    from promptctl.registry.rollouts.service import Decision, RolloutService
    from promptctl.registry.rollouts.values import RolloutState
    from promptctl.registry.store.database import Database
    from promptctl.registry.webhooks.dispatcher import Dispatcher
    from promptctl.registry.webhooks.service import WebhookService

# The database side (SQLAlchemy, Alembic) is imported on first use: the read commands
# (`promptctl log`, `list`, `lint`) never touch it, and it would double their start-up.

__all__ = ["WORKTREE", "LintRun", "ModelPriceSetting", "Registry", "Settings"]

T = TypeVar("T")


@dataclass(frozen=True)
class LintRun:
    """What `lint` found in the prompts it checked."""

    checked: int
    findings: list[Finding]

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> int:
        return len(self.findings) - self.errors


class _Built(Generic[T]):
    """A cached_property that builds once even when threads ask at the same moment (the
    server's thread pool does): two metrics services would mean two SQLite writer locks."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, registry: Any, owner: type | None = None) -> T:
        if registry is None:
            return self  # type: ignore[return-value]
        built = registry.__dict__
        if self.name not in built:
            with registry._build_lock:
                if self.name not in built:
                    built[self.name] = self.build(registry)
        return built[self.name]


def _watch_rollouts(session: Any, applied: Any) -> None:
    """The rollout service's watch_rollouts, imported when a release changes: reading
    releases (status, history) needs none of the rollout and analysis code."""
    from promptctl.registry.rollouts.service import watch_rollouts

    watch_rollouts(session, applied)


class Registry:
    """One prompt repository and one release database, built lazily from settings.

    It is also the local `ReleaseBackend`: the CLI's release commands call the same
    methods here as they call on a server through the remote backend.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._build_lock = threading.RLock()
        # pygit2 objects are not shared safely between threads: one git reader at a time.
        self._git_lock = threading.RLock()

    # -- what it is made of (each built on first use) --------------------------------

    @_Built
    def library(self) -> PromptLibrary:
        s = self.settings
        return PromptLibrary(
            s.repo,
            root=s.root,
            pattern=s.pattern,
            branch=s.branch,
            template=s.template,
            limits=s.render_limits,
            released=self._released_numbers,
        )

    @_Built
    def database(self) -> Database:
        from promptctl.registry.store.database import Database

        return Database(self.database_url)

    @_Built
    def releases(self) -> ReleaseService:
        from promptctl.registry.releases.service import ReleaseService

        service = ReleaseService(self.database)
        service.observers.append(_watch_rollouts)  # a person's action pauses or ends a rollout
        return service

    @_Built
    def rollouts(self) -> RolloutService:
        """Automated rollouts: started, paused, ended, and judged by the server's controller."""
        from promptctl.registry.rollouts.service import RolloutService

        return RolloutService(self.database, self.releases)

    @_Built
    def tokens(self) -> TokenService:
        from promptctl.registry.auth import TokenService

        return TokenService(self.database)

    @_Built
    def serving(self) -> ServingCache:
        """Releases, environments and tokens in memory; the server loads it at start."""
        from promptctl.registry.releases.serving import ServingCache

        return ServingCache(self.releases, self.tokens)

    @_Built
    def follower(self) -> RemoteFollower:
        """The remote this repository follows (PROMPTCTL_GIT_REMOTE, else the clone's origin).

        Only a server builds it (create_app): a registry without it never fetches, so the
        CLI never touches the user's remotes or branches.
        """
        from promptctl.registry.prompts.follow import RemoteFollower

        s = self.settings
        return RemoteFollower(getattr(s, "git_remote", None), getattr(s, "git_fetch_interval", 0))

    @_Built
    def metrics(self) -> MetricsService:
        """Ingest (which reads releases from the serving cache), scores and summaries.

        A server's settings carry the price table and the batch limit; a command that only
        reads summaries has neither, and needs neither.
        """
        from promptctl.registry.metrics.events import DEFAULT_MAX_BATCH
        from promptctl.registry.metrics.service import MetricsService

        return MetricsService(
            self.database,
            cache=self.serving,
            prices=self.price_book(),
            max_batch=getattr(self.settings, "max_batch", DEFAULT_MAX_BATCH),
            trace_url_template=self.settings.trace_url_template,
            event_retention=self.settings.retention_events,
        )

    @_Built
    def webhooks(self) -> WebhookService:
        """Webhook subscriptions, test messages and the delivery log."""
        from promptctl.registry.webhooks.service import WebhookService

        return WebhookService(self.database, self.webhook_dispatcher)

    @_Built
    def webhook_dispatcher(self) -> Dispatcher:
        """What sends webhook deliveries (PROMPTCTL_WEBHOOK_*); a server starts its loop."""
        from promptctl.registry.webhooks.dispatcher import Dispatcher, RetryPolicy, Sender

        s = self.settings
        sender = Sender(
            timeout=getattr(s, "webhook_timeout", 10.0),
            guarded=bool(getattr(s, "webhook_guarded", False)),
        )
        policy = RetryPolicy(
            base=getattr(s, "webhook_retry_base", 30.0),
            max_attempts=getattr(s, "webhook_max_attempts", 9),
        )
        return Dispatcher(
            self.database,
            sender,
            policy,
            interval=getattr(s, "webhook_interval", 1.0),
            workers=getattr(s, "webhook_workers", 8),
        )

    def price_book(self) -> PriceBook:
        """Return the model prices: PROMPTCTL_PRICES first, then the maintained data
        (genai-prices); built once."""
        return self._price_book

    @_Built
    def _price_book(self) -> PriceBook:
        from promptctl.registry.metrics.prices import price_book

        return price_book(self.settings.prices)

    @property
    def database_url(self) -> str:
        """The configured URL, else `.promptctl/registry.db` beside the repository."""
        from promptctl.registry.store.database import default_sqlite_url

        if self.settings.database_url:
            return self.settings.database_url
        return default_sqlite_url(self._embedded_base())

    def _embedded_base(self) -> Path:
        """The folder the embedded database's `.promptctl/` is in: the repository's."""
        try:
            store = GitStore(self.settings.repo)
            return store.workdir or store.git_dir
        except RepositoryError:
            return Path(self.settings.repo)

    def _released_numbers(self) -> dict[str, dict[str, int]]:
        """{prompt: {digest: number}} of every released version: the numbers git's
        numbering keeps (registry.prompts.versions.pin). The default SQLite file is read
        with the standard library, so `log` and `list` stay light; another database
        through SQLAlchemy; no database yet, or one that cannot be read, pins nothing."""
        import sqlite3

        from promptctl.registry.errors import RegistryError

        rows: list[tuple[str, str, int]] = []
        if not self.settings.database_url:
            from promptctl.registry.store.embedded import default_sqlite_file

            store = self.library.store
            path = default_sqlite_file(store.workdir or store.git_dir)
            if not path.is_file():
                return {}
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                    rows = connection.execute(
                        "SELECT prompt, digest, number FROM version_snapshots"
                        " WHERE number IS NOT NULL"
                    ).fetchall()
            except sqlite3.Error:
                return {}
        else:
            from sqlalchemy import select
            from sqlalchemy.exc import SQLAlchemyError

            from promptctl.registry.store.models import VersionSnapshot

            try:
                with self.database.session() as session:
                    rows = session.execute(
                        select(
                            VersionSnapshot.prompt, VersionSnapshot.digest, VersionSnapshot.number
                        ).where(VersionSnapshot.number.is_not(None))
                    ).all()
            except (RegistryError, SQLAlchemyError):
                return {}
        out: dict[str, dict[str, int]] = {}
        for prompt, digest, number in rows:
            out.setdefault(prompt, {})[digest] = number
        return out

    @property
    def tracked_branch(self) -> str:
        """The branch that numbers versions (the one a server's clone follows)."""
        return self.library.layout.branch

    def missing_database_file(self) -> Path | None:
        """The SQLite file of the release database when it does not exist (None when it
        does, or when the database is not a file)."""
        from promptctl.registry.store.database import sqlite_file

        path = sqlite_file(self.database_url)
        return path if path is not None and not path.exists() else None

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

    @contextmanager
    def git(self) -> Iterator[PromptLibrary]:
        """The git library, to one caller at a time."""
        with self._git_lock:
            yield self.library

    def fetch_remote(self, *, since: float | None = None) -> GitStatus:
        """Fetch the followed remote and fast-forward the tracked branch; return the status.

        Raises NoRemote or FetchFailed (also recorded in the status); serving goes on
        either way. With `since` (time.monotonic()), a fetch started after it counts.
        """
        with self.git() as library:
            branch = library.layout.branch
            self.follower.fetch(library.store, branch, since=since)
            return self.follower.status(library.store, branch)

    def git_status(self) -> GitStatus:
        """Which commit the repository has on the tracked branch; how following goes."""
        with self.git() as library:
            return self.follower.status(library.store, library.layout.branch)

    def check_push_webhook(self, body: bytes, signature: str | None) -> None:
        """Raise WebhookSignatureInvalid unless `signature` (X-Hub-Signature-256) signs
        `body` with PROMPTCTL_GIT_WEBHOOK_SECRET."""
        from promptctl.registry.prompts.follow import check_push_signature

        secret = getattr(self.settings, "git_webhook_secret", None)
        plain = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
        check_push_signature(plain, body, signature)

    def close(self) -> None:
        if "webhook_dispatcher" in self.__dict__:
            self.webhook_dispatcher.stop()
            self.webhook_dispatcher.sender.close()
        if "database" in self.__dict__:
            self.database.dispose()

    # -- prompts -----------------------------------------------------------------------

    def find_version(
        self, name: str, ref: str, *, viewer: TokenInfo | None = None
    ) -> PromptVersion:
        """Return the version a reference names: from git, else from what is released.

        The release snapshots answer `vN` and digest prefixes when git does not know the
        version or cannot be read, so a server keeps answering with its clone away; only
        those of the environments `viewer` sees. A file git has but that is no prompt
        (binary, not UTF-8, bad front matter) is that error.
        """
        from promptctl.registry.errors import ConfigError, NotFound, VersionNotFound
        from promptctl.registry.releases.lookup import match_released

        unreadable: RepositoryUnreadable | None = None
        try:
            with self.git() as library:
                return library.get(name, ref)
        except RepositoryUnreadable as exc:
            unreadable = exc  # unless the snapshots know the version, git's state is the answer
        except (NotFound, RepositoryError, ConfigError):
            pass  # unknown to git, or no repository configured: the snapshots may know it
        found = match_released(name, ref, self._released_versions(name, viewer))
        if found is None:
            raise unreadable or VersionNotFound(name, ref)
        return found

    def _released_versions(
        self, name: str, viewer: TokenInfo | None = None
    ) -> list[PromptVersion]:
        """What runs of a prompt anywhere `viewer` sees: from memory when this process
        serves."""
        if "serving" in self.__dict__:
            released = [
                (e.state, *(r.version if r else None for r in (e.stable, e.canary)))
                for e in self.serving.entries()
                if e.state.prompt == name
            ]
        else:
            released = self.releases.served_releases(prompt=name)
        return [
            version
            for state, stable, canary in released
            if viewer is None or viewer.sees(state.environment)
            for version in (stable, canary)
            if version
        ]

    def render(
        self,
        name: str,
        variables: Mapping[str, Any],
        *,
        environment: str | None = None,
        key: str | None = None,
        ref: str | None = None,
        viewer: TokenInfo | None = None,
    ) -> tuple[PromptVersion, Variant | None, Rendered]:
        """Render what runs in `environment` for `key`, or the version `ref` names (see
        `find_version` for what `viewer` may find)."""
        limits = self.settings.render_limits
        if environment is not None:
            if viewer is not None:
                viewer.narrow(environment)
            resolved, rendered = self.serving.render(name, environment, key, variables, limits)
            return resolved.version, resolved.variant, rendered
        version = self.find_version(name, ref or "", viewer=viewer)
        return version, None, version.render(variables, limits=limits)

    def catalog(self, *, viewer: TokenInfo | None = None) -> list[dict[str, Any]]:
        """Every prompt with what is released where `viewer` sees (see `registry.catalog`);
        from memory, so this process must serve."""
        from promptctl.registry.catalog import catalog

        served = self.serving.entries()
        if viewer is not None:
            served = [e for e in served if viewer.sees(e.state.environment)]
        return catalog(served, self.git)

    def diff(
        self,
        name: str,
        old_ref: str | None = None,
        new_ref: str | None = None,
        *,
        environment: str | None = None,
    ) -> PromptDiff:
        """Compare two versions (default: the last commit against the working tree).

        With `environment`, what is stable there is compared with `old_ref` (default HEAD):
        what promoting it would change; its breaking changes are what the release gate
        finds against every version serving there (stable, and a running canary).
        """
        from promptctl.registry.errors import UsageError
        from promptctl.registry.prompts.contract import conflicts
        from promptctl.registry.prompts.diff import diff_versions

        library = self.library
        if environment is not None:
            if new_ref is not None:
                raise UsageError("with --env, give at most one reference (what would be promoted)")
            serving = self.releases.serving_versions(name, environment)
            new = library.get(name, old_ref or "HEAD")
            result = diff_versions(name, serving[0][1], new)
            result.breaking = conflicts(new, serving)
            return result
        else:
            # Before the first commit there is no HEAD: the working tree's prompt is all new.
            no_head = old_ref is None and not library.store.has_commits()
            old = None if no_head else _version_or_none(library, name, old_ref or "HEAD")
            new = _version_or_none(library, name, new_ref)
        if old is None and new is None:
            raise PromptNotFound(name, f"{old_ref or 'HEAD'} or {new_ref or WORKTREE}")
        return diff_versions(name, old, new)

    def lint(self, names: tuple[str, ...] = (), rev: str | None = None) -> LintRun:
        """Lint the named prompts (default: all) in the working tree or at `rev`."""
        from promptctl.registry.prompts.lint import lint_library

        library = self.library
        known = library.list(rev)
        for name in names:
            if name not in known:
                raise PromptNotFound(name, rev or WORKTREE)
        findings = lint_library(library, names or None, rev, self.price_book())
        findings += self._policy_findings(library, rev)
        return LintRun(len(names) if names else len(known), findings)

    def _policy_findings(self, library: PromptLibrary, rev: str | None) -> list[Finding]:
        """The rollout policies of promptctl.toml, linted with the prompts."""
        from promptctl.registry.rollouts.policy import config_text, policy_findings

        return policy_findings(config_text(library, rev))

    def init_project(self, directory: Path) -> dict[str, Any]:
        """Create a prompt repository in `directory`, or add promptctl.toml to one."""
        from promptctl.registry.prompts.scaffold import init_project

        s = self.settings
        return init_project(directory, root=s.root, pattern=s.pattern, branch=s.branch)

    def review(
        self, base: str | None, head: str, releases: ReleaseBackend | None = None
    ) -> ReviewReport:
        """Report the prompt changes from `base` (default: the tracked branch) to `head`.

        With `releases` (this registry, or a server) each changed prompt says what runs in
        each environment today; this registry's database is read only if it exists, never
        created just to say that nothing is released.
        """
        from promptctl.registry.review.releases import release_lookup
        from promptctl.registry.review.report import review

        if releases is self and not self.settings.database_url and self.missing_database_file():
            releases = None
        library = self.library
        lookup = release_lookup(releases, library) if releases is not None else None
        branch = base or library.layout.branch
        return review(library, branch, head, lookup, self.price_book())

    # -- releases: the local ReleaseBackend --------------------------------------------

    def environments(self, *, viewer: TokenInfo | None = None) -> list[EnvironmentInfo]:
        """The environments (those `viewer` sees)."""
        known = self.releases.environments()
        return [e for e in known if viewer is None or viewer.sees(e.name)]

    def create_environment(self, name: str, *, protected: bool = False) -> EnvironmentInfo:
        """Create an environment (names follow the prompt-name rules, without '/')."""
        env = self.releases.create_environment(name, protected=protected)
        self._environments_changed()
        return env

    def set_protected(self, name: str, protected: bool) -> EnvironmentInfo:
        env = self.releases.set_protected(name, protected)
        self._environments_changed()
        return env

    def status(
        self,
        prompt: str | None = None,
        environment: str | None = None,
        *,
        viewer: TokenInfo | None = None,
    ) -> list[ReleaseState]:
        """The releases (of `prompt`, in `environment`); with `viewer`, of the environment
        it is limited to, if any (another one is OtherEnvironment). A prompt neither the
        repository nor the release database knows is PromptNotFound, not an empty list."""
        if viewer is not None:
            environment = viewer.narrow(environment)
        states = self._read_status(prompt, environment)
        if states is None:
            states = self.releases.status(prompt, environment)
        if prompt is not None and not states:
            self._check_known(prompt)
        return states

    def _read_status(
        self, prompt: str | None, environment: str | None
    ) -> list[ReleaseState] | None:
        """The releases read straight from the embedded SQLite file, without SQLAlchemy
        (a one-shot `status` spent most of its time importing it), or None: a configured
        database, or a process that has the release service already (the server), asks
        the service, as does anything the file alone cannot answer (see status_reader)."""
        if self.settings.database_url or "releases" in self.__dict__:
            return None
        from promptctl.registry.releases.status_reader import read_status
        from promptctl.registry.store.embedded import default_sqlite_file, migration_head

        file = default_sqlite_file(self._embedded_base())
        return read_status(file, migration_head(), prompt, environment)

    def history(
        self,
        prompt: str,
        environment: str | None = None,
        limit: int | None = None,
        *,
        viewer: TokenInfo | None = None,
    ) -> list[LogEntry]:
        """A prompt's release log, newest first; narrowed to `viewer` as `status` is. A
        prompt neither the repository nor the release database knows is PromptNotFound."""
        if viewer is not None:
            environment = viewer.narrow(environment)
        entries = self.releases.history(prompt, environment, limit=limit)
        if not entries:
            self._check_known(prompt)
        return entries

    def _check_known(self, prompt: str) -> None:
        """Raise PromptNotFound, with the names it may have meant, for a prompt that is in
        neither the repository (working tree or tracked branch) nor the release database."""
        from promptctl.registry.errors import RegistryError

        if self.releases.history(prompt, limit=1):
            return
        names: set[str] = set()
        try:
            with self.git() as library:
                names.update(library.list())
                if prompt not in names and library.tracked_tip() is not None:
                    names.update(library.list(library.layout.branch))
        except RegistryError:
            pass  # no repository here: the release database alone decides
        if prompt in names:
            return
        names.update(s.prompt for s in self.releases.status())
        raise PromptNotFound(prompt, known=names)

    def perform(self, action: ReleaseAction) -> ReleaseState:
        """Carry out a release action (one transaction, one log row); the serving cache
        shows the new state at once."""
        releases = self.releases
        prompt, environment = action.prompt, action.environment
        common: dict[str, Any] = {
            "actor": self.actor(action.actor),
            "reason": action.reason,
            "expected_revision": action.expected_revision,
        }
        if isinstance(action, Promote) and action.source is not None:
            state = releases.promote_from(
                prompt,
                action.source,
                environment,
                canary_bp=action.canary_bp,
                allow_breaking=action.allow_breaking,
                confirmed=action.confirmed,
                **common,
            )
        elif isinstance(action, Promote):
            state = releases.promote(
                self._promoted_version(action),
                environment,
                canary_bp=action.canary_bp,
                force=action.force,
                allow_breaking=action.allow_breaking,
                confirmed=action.confirmed,
                skip_unchanged=action.if_changed,
                **common,
            )
        elif isinstance(action, Ramp):
            state = releases.ramp(
                prompt, environment, action.weight_bp, confirmed=action.confirmed, **common
            )
        elif isinstance(action, Complete):
            state = releases.complete(prompt, environment, confirmed=action.confirmed, **common)
        elif isinstance(action, Abort):
            state = releases.abort(prompt, environment, **common)
        elif isinstance(action, Rollback):
            to = self._rollback_target(action) if action.to_ref else None
            state = releases.rollback(prompt, environment, to=to, **common)
        else:
            raise TypeError(f"not a release action: {action!r}")
        self._release_changed(state.prompt, state.environment)
        return state

    def promote(self, action: Promote, backend: ReleaseBackend | None = None) -> Promotion:
        """Promote through `backend` (default: here), saying whether anything changed.

        Promoting HEAD (the default) from a working tree where the prompt or a partial it
        includes differs from HEAD promotes HEAD all the same, and the promotion's
        `warnings` say so: the edits are not what goes out.
        """
        from promptctl.registry.releases.batch import promote

        pinned = self.pin(action)
        warnings = self._uncommitted(action, pinned)
        return replace(promote(backend or self, pinned), warnings=warnings)

    def _uncommitted(self, asked: Promote, pinned: ReleaseAction) -> tuple[str, ...]:
        """The warning for a promotion of HEAD whose files have uncommitted changes."""
        from promptctl.registry.errors import RegistryError

        if asked.source is not None or asked.digest is not None:
            return ()
        if (asked.ref or DEFAULT_REF) != DEFAULT_REF:
            return ()
        try:
            with self.git() as library:
                changed = library.uncommitted(asked.prompt)
        except RegistryError:
            return ()  # nothing here to compare with; a warning never stops a promotion
        if not changed:
            return ()
        commit = getattr(pinned, "commit", None)
        where = f" (commit {commit[:10]})" if commit else ""
        verb = "has" if len(changed) == 1 else "have"
        return (f"{', '.join(changed)} {verb} uncommitted changes; promoting HEAD{where}",)

    def promote_all(
        self, request: PromoteAll, backend: ReleaseBackend | None = None
    ) -> list[PromptPromotion]:
        """Promote every prompt whose version at `request.ref` (read here) is not stable yet;
        the promotions go through `backend` (default: here)."""
        from promptctl.registry.releases.batch import promote_all

        with self.git() as library:
            return promote_all(library, backend or self, request)

    def release_documents(self, environment: str) -> dict[str, dict[str, Any]]:
        """Every release in an environment with its content, as clients receive it."""
        from promptctl.registry.releases.documents import release_document

        return {
            state.prompt: release_document(state, stable, canary)
            for state, stable, canary in self.releases.served_releases(environment=environment)
        }

    def metrics_summary(
        self,
        prompt: str,
        environment: str,
        since: str | None = None,
        until: str | None = None,
        *,
        viewer: TokenInfo | None = None,
    ) -> MetricsSummary:
        """A prompt's metrics per version and variant over [since, until) (default 7 days)."""
        from promptctl.registry.metrics.summary import parse_time

        if viewer is not None:
            viewer.narrow(environment)

        return self.metrics.summary(
            prompt, environment, since=parse_time(since), until=parse_time(until)
        )

    # -- the dashboard's reads (registry.metrics.series, registry.releases.audit) --------

    def metrics_series(
        self,
        prompt: str,
        environment: str,
        *,
        start: datetime,
        end: datetime,
        step: int,
        viewer: TokenInfo | None = None,
    ) -> MetricSeries:
        """A prompt's figures per version and variant over time, `step` seconds a point."""
        from promptctl.registry.metrics.series import read_series

        if viewer is not None:
            viewer.narrow(environment)
        return read_series(self.database, prompt, environment, start=start, end=end, step=step)

    def recent_traffic(
        self, since: datetime, *, prompt: str | None = None, viewer: TokenInfo | None = None
    ) -> dict[tuple[str, str], Traffic]:
        """Calls and errors per (prompt, environment) since `since`, from minute rollups
        (of one prompt, when named)."""
        from promptctl.registry.metrics.series import recent_traffic

        environment = viewer.narrow(None) if viewer is not None else None
        return recent_traffic(self.database, since, environment, prompt)

    def audit_log(self, query: AuditQuery, *, viewer: TokenInfo | None = None) -> list[LogEntry]:
        """Release log rows across prompts, newest first (see registry.releases.audit)."""
        from promptctl.registry.releases.audit import audit_entries

        if viewer is not None:
            query = replace(query, environment=viewer.narrow(query.environment))
        return audit_entries(self.database, query)

    def prune_metrics(
        self,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> PruneReport:
        """Delete metric rows past their retention (PROMPTCTL_RETENTION_*) in small
        transactions, or with `dry_run` count what would go (registry.metrics.retention);
        `keep_going()` is asked between transactions."""
        from promptctl.registry.metrics.retention import Retention, prune

        retention = Retention.from_settings(self.settings)
        return prune(self.database, retention, now=now, dry_run=dry_run, keep_going=keep_going)

    def analyze(
        self,
        name: str,
        environment: str,
        *,
        since: str | None = None,
        viewer: TokenInfo | None = None,
    ) -> CanaryReport:
        """Judge the canary of `name` in `environment` against stable, from the start of
        its current weight step (or `since`) to now (registry.analysis.stored).

        Under a live rollout of that canary the guards are its policy's, so that analyze,
        status and the dashboard say what the controller acts on; else the defaults."""
        from promptctl.registry.analysis.stored import analyze_canary
        from promptctl.registry.metrics.summary import parse_time

        if viewer is not None:
            viewer.narrow(environment)
        policy = self._live_policy(name, environment)
        if policy is None:
            return analyze_canary(self.database, name, environment, since=parse_time(since))
        report = analyze_canary(
            self.database,
            name,
            environment,
            since=parse_time(since),
            config=policy.analysis_config(),
        )
        note = f"judged with the guards of rollout policy '{policy.name}', as its controller judges"
        return replace(report, notes=(*report.notes, note))

    def _live_policy(self, name: str, environment: str) -> Policy | None:
        """The policy of the live rollout of the canary running now, if there is one."""
        from promptctl.registry.errors import RolloutNotFound

        try:
            rollout = self.rollouts.current(name, environment)
        except RolloutNotFound:
            return None
        if not rollout.live:
            return None
        release = self.releases.release(name, environment)
        if release is None or release.canary is None:
            return None
        return rollout.policy if release.canary.digest == rollout.canary_digest else None

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The active token with this secret, from memory; None when unknown or revoked."""
        from promptctl.registry.auth import hash_token

        return self.serving.token(hash_token(secret))

    def pin(self, action: ReleaseAction) -> ReleaseAction:
        """Name the content an action means as read in this repository, so that wherever
        it is carried out (here, or on a server with a clone of its own) it acts on that
        content: a promotion's reference (default HEAD) becomes its digest and commit, a
        rollback target its digest. Without a repository here, or for a rollback target
        git does not know, the reference goes as given, for the server to read."""
        from promptctl.registry.errors import NotARepository, RegistryError

        if isinstance(action, Promote) and action.source is None and action.digest is None:
            ref = action.ref or DEFAULT_REF
            try:
                version = self._version(action.prompt, ref)
            except NotARepository:
                return action
            commit = version.commit.sha if version.commit else None
            return replace(action, ref=ref, digest=version.digest, commit=commit)
        if isinstance(action, Rollback) and action.to_ref:
            try:
                version = self._version(action.prompt, action.to_ref)
            except RegistryError:
                return action  # maybe known to the release snapshots
            return replace(action, to_ref=version.digest)
        return action

    def _version(self, name: str, ref: str, *, fetch: bool = False) -> PromptVersion:
        """The version `ref` names in git. With `fetch`, a reference git does not know
        makes a registry that follows a remote (a server) fetch it and look again."""
        from promptctl.registry.errors import VersionNotFound

        asked = time.monotonic()
        try:
            with self.git() as library:
                return library.get(name, ref)
        except (VersionNotFound, PromptNotFound):
            outcome = self._fetch_for(asked) if fetch else None
            if outcome is None:
                raise
        try:
            with self.git() as library:
                return library.get(name, ref)
        except VersionNotFound as exc:
            hint = "; ".join(part for part in (exc.hint, outcome) if part)
            raise VersionNotFound(name, ref, hint) from None

    def _promoted_version(self, action: Promote) -> PromptVersion:
        """What a promotion promotes: exactly its digest, else what its ref names."""
        if action.digest is None:
            return self._version(action.prompt, action.ref or DEFAULT_REF, fetch=True)
        from promptctl.registry.errors import VersionNotOnServer
        from promptctl.registry.releases.lookup import find_digest

        name, digest = action.prompt, action.digest.lower()
        asked = time.monotonic()
        outcome = None
        while True:
            with self.git() as library:
                found = find_digest(library, name, digest, action.commit, action.ref)
            if found.version is not None:
                return found.version
            released = [v for v in self._released_versions(name) if v.digest == digest]
            if released:
                return released[0]
            if outcome is not None:
                break
            outcome = self._fetch_for(asked) or "the server follows no remote to fetch it from"
        raise VersionNotOnServer(
            name,
            digest,
            ref=action.ref,
            commit=action.commit,
            has=found.has,
            branch=found.branch,
            tip=found.tip,
            at_commit=found.at_commit,
            fetch=outcome,
        )

    def _fetch_for(self, asked: float) -> str | None:
        """Fetch for content a request named and git lacks; say how it went (None when
        this registry follows no remote)."""
        from promptctl.registry.errors import FetchFailed, NoRemote

        if "follower" not in self.__dict__:
            return None
        try:
            status = self.fetch_remote(since=asked)
        except NoRemote:
            return None
        except FetchFailed as exc:
            return str(exc)
        return f"fetched {status.remote} just now: still not there (was it pushed?)"

    def _rollback_target(self, action: Rollback) -> PromptVersion:
        """The version `--to` names: in git, else among released versions. A full digest
        (as a CLI sends) that none has was never stable here."""
        from promptctl.registry.errors import NeverStableHere, VersionNotFound

        ref = action.to_ref or ""
        try:
            return self.find_version(action.prompt, ref)
        except VersionNotFound:
            if len(ref) == 64 and all(c in "0123456789abcdef" for c in ref.lower()):
                raise NeverStableHere(action.prompt, action.environment, ref[:12]) from None
            raise

    def _release_changed(self, prompt: str, environment: str) -> None:
        self._wake_webhooks()
        if "serving" in self.__dict__:
            self.serving.refresh_release(prompt, environment)

    def _wake_webhooks(self) -> None:
        """Send the deliveries an action here just wrote now, not at the next poll."""
        if "webhook_dispatcher" in self.__dict__:
            self.webhook_dispatcher.wake()

    def _environments_changed(self) -> None:
        self._wake_webhooks()
        if "serving" in self.__dict__:
            self.serving.load_all()

    # -- the database schema -----------------------------------------------------------

    # -- automated rollouts (registry.rollouts) -----------------------------------------

    def rollout_policies(self) -> PolicyBook:
        """The rollout policies of promptctl.toml on the tracked branch (what was reviewed),
        else in HEAD; the built-in default without a repository or a [rollout] table."""
        from promptctl.registry.errors import NotARepository
        from promptctl.registry.rollouts.policy import config_text, read_policies

        try:
            with self.git() as library:
                text = config_text(library, library.tracked_tip() or "HEAD")
        except NotARepository:
            text = None
        return read_policies(text)

    def start_rollout(
        self,
        prompt: str,
        environment: str,
        *,
        ref: str | None = None,
        digest: str | None = None,
        commit: str | None = None,
        policy: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        confirmed: bool = False,
        viewer: TokenInfo | None = None,
    ) -> RolloutState:
        """Start a rollout of the version `ref` (or exactly `digest`) as canary at the first
        step of its policy (`policy`, else the one promptctl.toml gives the prompt)."""
        if viewer is not None:
            viewer.narrow(environment)
        chosen = self.rollout_policies().choose(prompt, policy)
        asked = Promote(prompt=prompt, environment=environment, ref=ref, digest=digest)
        version = self._promoted_version(replace(asked, commit=commit))
        state = self.rollouts.start(
            version,
            environment,
            chosen,
            actor=self.actor(actor),
            reason=reason,
            confirmed=confirmed,
        )
        self._release_changed(prompt, environment)
        return state

    def rollout(
        self, prompt: str, environment: str, *, viewer: TokenInfo | None = None
    ) -> RolloutState:
        """The newest rollout of a prompt in an environment, with its decisions."""
        if viewer is not None:
            viewer.narrow(environment)
        return self.rollouts.current(prompt, environment)

    def change_rollout(
        self,
        verb: str,
        prompt: str,
        environment: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        confirmed: bool = False,
    ) -> RolloutState:
        """Pause, resume, abort or promote (skip the remaining steps of) a live rollout."""
        service, who = self.rollouts, self.actor(actor)
        if verb == "pause":
            state = service.pause(prompt, environment, actor=who, reason=reason)
        elif verb == "resume":
            state = service.resume(
                prompt, environment, actor=who, reason=reason, confirmed=confirmed
            )
        elif verb == "abort":
            state = service.abort(prompt, environment, actor=who, reason=reason)
        elif verb == "promote":
            state = service.promote(
                prompt, environment, actor=who, reason=reason, confirmed=confirmed
            )
        else:
            raise ValueError(f"not a rollout action: {verb}")
        self._release_changed(prompt, environment)
        return state

    def rollout_controller(self, interval: float) -> Controller:
        """The controller a server runs every `interval` seconds: it acts while it holds the
        lease, which lasts 1.5 intervals, so another replica takes over within two."""
        from promptctl.registry.rollouts.controller import Controller, Lease, replica_id

        lease = Lease(self.database, replica_id(), seconds=1.5 * interval)
        return Controller(lease, self.run_rollouts)

    def run_rollouts(
        self, may_act: Callable[[], bool] | None = None
    ) -> list[tuple[RolloutState, Decision]]:
        """Judge every running rollout once and act on it (the controller's one look).

        `may_act` is asked right before each decision is written (the controller renews
        its lease there); once it says no, the look stops with that rollout, yielded.
        """
        import logging

        service = self.rollouts
        done = []
        for rollout_id in service.running_ids():
            try:
                decision = service.decide(rollout_id, may_act)
            except Exception:  # one rollout that cannot be judged must not stop the others
                try:
                    state = service.by_id(rollout_id)
                    which = f"the rollout of {state.prompt} in {state.environment}"
                except Exception:  # a row this version cannot read at all
                    which = "a rollout"
                logging.getLogger("promptctl.rollouts").warning(
                    "could not judge %s (id %d); the others go on",
                    which,
                    rollout_id,
                    exc_info=True,
                )
                continue
            if decision is None:
                continue
            state = service.by_id(rollout_id)
            if decision.action == "yielded":
                done.append((state, decision))
                break  # another replica acts now: leave it the rest of the look
            if decision.action != "held":
                self._release_changed(state.prompt, state.environment)
            done.append((state, decision))
        return done

    def upgrade_schema(self, revision: str = "head") -> str | None:
        """Apply migrations up to `revision`; return the revision the database is at."""
        from promptctl.registry.store.database import current_revision, upgrade

        engine = self.database.engine
        upgrade(engine, revision)
        return current_revision(engine)

    def downgrade_schema(self, revision: str) -> str | None:
        """Revert migrations down to `revision` ('base' drops everything); return where it is."""
        from promptctl.registry.store.database import current_revision, downgrade

        engine = self.database.engine
        downgrade(engine, revision)
        return current_revision(engine)

    def schema_revisions(self) -> tuple[str | None, str | None]:
        """The schema revision of the database, and the newest one available."""
        from promptctl.registry.store.database import current_revision, head_revision

        return current_revision(self.database.engine), head_revision()


def _version_or_none(library: PromptLibrary, name: str, ref: str | None) -> PromptVersion | None:
    try:
        return library.get(name, ref)
    except PromptNotFound:
        return None
