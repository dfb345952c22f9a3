"""Releases: what runs where, changed by audited actions with optimistic concurrency.

Every action is one transaction that reads the release under a write lock, checks its
revision against the one the caller saw, writes the new state with `revision + 1` and
appends one row to the release log. A caller that passes no expected revision gets the
revision this service read before its slow work (lint, snapshot) as the expectation, so
two people acting on one release at once never silently overwrite each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from promptctl.registry.errors import (
    AlreadyCanary,
    AlreadyStable,
    ConfigError,
    EnvironmentExists,
    IncompatibleVersion,
    InvalidEnvironmentName,
    InvalidWeight,
    LintFailed,
    NeverStableHere,
    NoCanary,
    NoStableForCanary,
    NothingToRollBack,
    ProtectedEnvironment,
    ReleaseConflict,
    ReleaseNotFound,
    RevisionMismatch,
    UnmergedVersion,
    UsageError,
)
from promptctl.registry.prompts.contract import Conflict, conflicts
from promptctl.registry.prompts.layout import check_name
from promptctl.registry.prompts.lint import ERROR, lint_version
from promptctl.registry.prompts.promptversion import PromptVersion
from promptctl.registry.releases.changes import announce
from promptctl.registry.releases.queries import (
    environment_info,
    environment_infos,
    find_environment,
    locked_release,
    log_entries,
    read_snapshot,
    read_snapshots,
    release_fingerprint,
    release_states,
    stable_history,
    store_snapshot,
    write_release,
    written_state,
)
from promptctl.registry.releases.routing import BUCKETS
from promptctl.registry.releases.values import EnvironmentInfo, LogEntry, ReleaseState
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import Environment, Release, ReleaseLog, utcnow
from promptctl.registry.webhooks.outbox import environment_changed, release_logged

ENV_NAME_MAX = 64


@dataclass(frozen=True)
class _Change:
    """The new state an action wants, and what its log row says."""

    action: str
    stable: str
    canary: str | None
    weight_bp: int
    from_digest: str | None
    to_digest: str | None
    log_weight: int | None = None
    allowed_breaking: tuple[str, ...] = ()  # the incompatibilities a release let through


@dataclass(frozen=True)
class Applied:
    """A release action as written, for what must change with it in its transaction.

    `managed` is True when the caller handed its own `within` (a rollout acting on its
    release); observers then leave it alone.
    """

    prompt: str
    environment: str
    action: str
    actor: str
    revision: int
    stable: str
    canary: str | None
    weight_bp: int
    managed: bool


# Runs inside an action's transaction, after the release and its log row are written: what
# it writes commits with them, and what it raises undoes them.
Within = Callable[[Session, Applied], None]


@dataclass(frozen=True)
class _Observed:
    """The revision an action expects, and whether the caller gave it (If-Match)."""

    revision: int
    explicit: bool


@dataclass(frozen=True)
class _Current:
    release: Release | None
    stack: list[str]
    ever_stable: frozenset[str]  # every version stable here at some point
    read: Callable[[str], PromptVersion]  # a released version's content, by digest


class ReleaseService:
    """Environments, releases and the release log in one database."""

    def __init__(self, database: Database) -> None:
        self.db = database
        # Called in every action's transaction (registry.rollouts pauses or ends a rollout
        # whose release a person changed).
        self.observers: list[Within] = []

    # -- environments --------------------------------------------------------------

    def environments(self) -> list[EnvironmentInfo]:
        with self.db.session() as session:
            return environment_infos(session)

    def create_environment(self, name: str, *, protected: bool = False) -> EnvironmentInfo:
        """Create an environment; names follow the prompt-name rules, without '/'."""
        try:
            valid = "/" not in name and len(name) <= ENV_NAME_MAX and bool(check_name(name))
        except ConfigError:  # its message speaks of prompt names
            valid = False
        if not valid:
            raise InvalidEnvironmentName(name, ENV_NAME_MAX)
        try:
            with self.db.session() as session:
                if session.scalar(select(Environment).where(Environment.name == name)):
                    raise EnvironmentExists(name)
                row = Environment(name=name, protected=protected, created_at=utcnow())
                session.add(row)
                session.flush()
                return environment_info(row)
        except IntegrityError as exc:
            raise EnvironmentExists(name) from exc

    def set_protected(self, name: str, protected: bool) -> EnvironmentInfo:
        with self.db.session() as session:
            row = find_environment(session, name)
            if row.protected != protected:
                environment_changed(session, name, protected)  # its webhooks, committed with it
            row.protected = protected
            return environment_info(row)

    # -- reads ---------------------------------------------------------------------

    def release(self, prompt: str, environment: str) -> ReleaseState | None:
        """Return the release of a prompt in an environment, or None if there is none."""
        states = self.status(prompt, environment)
        return states[0] if states else None

    def status(
        self, prompt: str | None = None, environment: str | None = None
    ) -> list[ReleaseState]:
        """Return releases, optionally of one prompt and/or one environment."""
        with self.db.session() as session:
            return release_states(session, prompt, environment)

    def history(
        self, prompt: str, environment: str | None = None, *, limit: int | None = None
    ) -> list[LogEntry]:
        """Return the release log of a prompt, newest first."""
        with self.db.session() as session:
            return log_entries(session, prompt, environment, limit)

    def snapshot(self, prompt: str, digest: str) -> PromptVersion:
        """Return a released version's content from its snapshot (no git needed)."""
        with self.db.session() as session:
            return read_snapshot(session, prompt, digest)

    def released_version(
        self, prompt: str, environment: str, variant: str = "stable"
    ) -> PromptVersion:
        """Return the content of what is stable (or canary) in an environment."""
        state = self.release(prompt, environment)
        if state is None:
            raise ReleaseNotFound(prompt, environment)
        ref = state.stable if variant == "stable" else state.canary
        if ref is None:
            raise NoCanary(prompt, environment)
        return self.snapshot(prompt, ref.digest)

    def served_releases(
        self, prompt: str | None = None, environment: str | None = None
    ) -> list[tuple[ReleaseState, PromptVersion, PromptVersion | None]]:
        """Return releases with the content of their stable and canary versions."""
        states = self.status(prompt, environment)
        versions = self.contents(states)
        return [
            (
                state,
                versions[(state.prompt, state.stable.digest)],
                versions[(state.prompt, state.canary.digest)] if state.canary else None,
            )
            for state in states
        ]

    def serving_versions(self, prompt: str, environment: str) -> list[tuple[str, PromptVersion]]:
        """What serves a prompt in an environment, stable first, each described as the
        release gate names it (`v6 (stable)`)."""
        served = self.served_releases(prompt, environment)
        if not served:
            raise ReleaseNotFound(prompt, environment)
        _, stable, canary = served[0]
        return _described([("stable", stable), ("canary", canary)])

    def contents(self, states: list[ReleaseState]) -> dict[tuple[str, str], PromptVersion]:
        """Return {(prompt, digest): version} for the versions these releases run, in bulk."""
        wanted = {
            (s.prompt, d)
            for s in states
            for d in (s.stable.digest, s.canary.digest if s.canary else None)
            if d
        }
        if not wanted:
            return {}
        with self.db.session() as session:
            return read_snapshots(session, wanted)

    def fingerprint(self) -> tuple[int, ...]:
        """A cheap value that changes whenever a release, environment or token changes.

        Replicas poll it instead of sharing a counter row, so release actions on different
        prompts never queue behind one hot row.
        """
        with self.db.session() as session:
            return release_fingerprint(session)

    # -- actions -------------------------------------------------------------------

    def promote(
        self,
        version: PromptVersion,
        environment: str,
        *,
        actor: str,
        canary_bp: int | None = None,
        reason: str | None = None,
        force: bool = False,
        allow_breaking: bool = False,
        confirmed: bool = False,
        expected_revision: int | None = None,
        skip_unchanged: bool = False,
        within: Within | None = None,
    ) -> ReleaseState:
        """Make a version stable (clearing any canary), or start it as canary at a weight.

        With `skip_unchanged`, promoting the version that is already stable (and no canary
        runs) returns the release as it is, so a CI job can run it after every merge.

        A version that would serve beside others must accept their callers' calls
        (`registry.prompts.contract`): a canary is checked against the stable version; a
        stable promotion over a running canary, against the stable version and the canary,
        whose callers get it at once. Any incompatibility refuses the promotion
        (IncompatibleVersion) unless `allow_breaking`, and then the log records them. A
        stable promotion with no canary running replaces one version with another, which is
        what `review` judges; ramping and completing a canary change no contract, so the
        check at its start covers them.
        """
        if skip_unchanged and canary_bp is None:
            current = self.release(version.name, environment)
            if current and current.stable.digest == version.digest and current.canary is None:
                return current
        observed = self._observe(version.name, environment, expected_revision, confirmed)
        self._check_merged(version, environment)
        forced = self._check_lint(version, force)
        _check_weight(canary_bp)
        digest = version.digest

        def gate(current: _Current, role: str) -> tuple[str, ...]:
            """The incompatibilities with what serves beside the version, if allowed."""
            found = _conflicts(current, version, role)
            if found and not allow_breaking:
                raise IncompatibleVersion(
                    version.name, environment, version.label, role, found
                )
            return tuple(str(c) for c in found)

        def change(current: _Current) -> _Change:
            release = current.release
            if canary_bp is None:
                if release is not None and release.stable_digest == digest:
                    raise AlreadyStable(version.name, environment, version.label, "promote")
                return _Change(
                    "promote",
                    digest,
                    None,
                    0,
                    release.stable_digest if release else None,
                    digest,
                    allowed_breaking=gate(current, "stable"),
                )
            if release is None:
                raise NoStableForCanary(version.name, environment)
            if release.stable_digest == digest:
                raise AlreadyStable(version.name, environment, version.label, "canary")
            if release.canary_digest == digest:
                raise AlreadyCanary(version.name, environment, version.label)
            return _Change(
                "canary_start",
                release.stable_digest,
                digest,
                canary_bp,
                release.stable_digest,
                digest,
                canary_bp,
                allowed_breaking=gate(current, "canary"),
            )

        return self._apply(
            version.name,
            environment,
            observed,
            change,
            actor=actor,
            reason=reason,
            forced=forced,
            snapshot=version,
            within=within,
        )

    def promote_from(
        self,
        prompt: str,
        source: str,
        environment: str,
        *,
        actor: str,
        canary_bp: int | None = None,
        reason: str | None = None,
        allow_breaking: bool = False,
        confirmed: bool = False,
        expected_revision: int | None = None,
    ) -> ReleaseState:
        """Promote what is stable in `source` into `environment` (with promote's checks of
        what serves there)."""
        if source == environment:
            raise UsageError("--from and --env name the same environment")
        version = self.released_version(prompt, source, "stable")
        return self.promote(
            version,
            environment,
            actor=actor,
            canary_bp=canary_bp,
            reason=reason or f"from {source}",
            force=True,
            allow_breaking=allow_breaking,
            confirmed=confirmed,
            expected_revision=expected_revision,
        )

    def ramp(
        self,
        prompt: str,
        environment: str,
        weight_bp: int,
        *,
        actor: str,
        reason: str | None = None,
        confirmed: bool = False,
        expected_revision: int | None = None,
        within: Within | None = None,
    ) -> ReleaseState:
        """Change the canary's weight.

        Setting the weight the canary has already is a no-op: the release comes back as it
        is, at the same revision and with no log row (nor any confirmation needed), so a
        script may ramp to a weight twice. The unchanged revision is how a caller tells.
        """
        _check_weight(weight_bp)
        current = self.release(prompt, environment)
        if (
            current is not None
            and current.canary is not None
            and current.weight_bp == weight_bp
            and expected_revision in (None, current.revision)
        ):
            return current
        observed = self._observe(prompt, environment, expected_revision, confirmed)

        def change(current: _Current) -> _Change:
            release = _with_canary(current, prompt, environment, "change its weight")
            return _Change(
                "ramp",
                release.stable_digest,
                release.canary_digest,
                weight_bp,
                release.canary_digest,
                release.canary_digest,
                weight_bp,
            )

        return self._apply(
            prompt, environment, observed, change, actor=actor, reason=reason, within=within
        )

    def complete(
        self,
        prompt: str,
        environment: str,
        *,
        actor: str,
        reason: str | None = None,
        confirmed: bool = False,
        expected_revision: int | None = None,
        within: Within | None = None,
    ) -> ReleaseState:
        """Make the canary stable."""
        observed = self._observe(prompt, environment, expected_revision, confirmed)

        def change(current: _Current) -> _Change:
            release = _with_canary(current, prompt, environment, "complete")
            return _Change(
                "complete",
                release.canary_digest,
                None,
                0,
                release.stable_digest,
                release.canary_digest,
            )

        return self._apply(
            prompt, environment, observed, change, actor=actor, reason=reason, within=within
        )

    def abort(
        self,
        prompt: str,
        environment: str,
        *,
        actor: str,
        reason: str | None = None,
        expected_revision: int | None = None,
        within: Within | None = None,
    ) -> ReleaseState:
        """Drop the canary: all traffic goes back to stable. Never needs confirmation."""
        observed = self._observe(prompt, environment, expected_revision, True)

        def change(current: _Current) -> _Change:
            release = _with_canary(current, prompt, environment, "abort")
            return _Change(
                "abort",
                release.stable_digest,
                None,
                0,
                release.canary_digest,
                release.stable_digest,
                0,
            )

        return self._apply(
            prompt, environment, observed, change, actor=actor, reason=reason, within=within
        )

    def rollback(
        self,
        prompt: str,
        environment: str,
        *,
        actor: str,
        to: PromptVersion | None = None,
        reason: str | None = None,
        expected_revision: int | None = None,
        within: Within | None = None,
    ) -> ReleaseState:
        """Abort a canary; without one, put back the stable version before the last change.

        Rolling back twice goes back two releases: the stable versions form a stack that
        promotions push and rollbacks pop. `to` rolls back to a given version instead, one
        that was stable in this environment before (anything else is a promotion).
        Rollback is always immediate, so it needs no confirmation in protected environments.
        """
        observed = self._observe(prompt, environment, expected_revision, True)

        def change(current: _Current) -> _Change:
            release = current.release
            if release is None:
                raise ReleaseNotFound(prompt, environment)
            if release.canary_digest and (to is None or to.digest == release.stable_digest):
                return _Change(
                    "rollback_canary",
                    release.stable_digest,
                    None,
                    0,
                    release.canary_digest,
                    release.stable_digest,
                    0,
                )
            if to is not None:
                if to.digest == release.stable_digest:
                    raise AlreadyStable(prompt, environment, to.label, "rollback")
                # Going back needs no checks only because the version passed them when it
                # was promoted here; anything else must go through promote and its guards.
                if to.digest not in current.ever_stable:
                    raise NeverStableHere(prompt, environment, to.label)
                return _Change("rollback_to", to.digest, None, 0, release.stable_digest, to.digest)
            if len(current.stack) < 2:
                raise NothingToRollBack(prompt, environment)
            return _Change(
                "rollback", current.stack[-2], None, 0, release.stable_digest, current.stack[-2]
            )

        return self._apply(
            prompt,
            environment,
            observed,
            change,
            actor=actor,
            reason=reason,
            snapshot=to,
            within=within,
        )

    # -- the transaction -------------------------------------------------------------

    def _observe(
        self, prompt: str, environment: str, expected: int | None, confirmed: bool
    ) -> _Observed:
        """Check the environment and return the revision the action will expect."""
        with self.db.session() as session:
            env = find_environment(session, environment)
            if env.protected and not confirmed:
                raise ProtectedEnvironment(environment)
            if expected is not None:
                return _Observed(expected, explicit=True)
            release = locked_release(session, prompt, env, lock=False)
            return _Observed(release.revision if release else 0, explicit=False)

    def _check_merged(self, version: PromptVersion, environment: str) -> None:
        """A preview (a version not on the tracked branch) may not reach a protected env."""
        if version.number is not None:
            return
        with self.db.session() as session:
            if find_environment(session, environment).protected:
                raise UnmergedVersion(version.name, version.label, version.source, environment)

    def _check_lint(self, version: PromptVersion, force: bool) -> bool:
        errors = [f for f in lint_version(version) if f.severity == ERROR]
        if errors and not force:
            raise LintFailed(f"{version.name}@{version.label}", str(errors[0]), len(errors))
        return bool(errors)

    def _apply(
        self,
        prompt: str,
        environment: str,
        observed: _Observed,
        change: Callable[[_Current], _Change],
        *,
        actor: str,
        reason: str | None,
        forced: bool = False,
        snapshot: PromptVersion | None = None,
        within: Within | None = None,
    ) -> ReleaseState:
        try:
            with self.db.session() as session:
                env = find_environment(session, environment)
                release = locked_release(session, prompt, env, lock=True)
                actual = release.revision if release else 0
                if actual != observed.revision:
                    if observed.explicit:
                        raise RevisionMismatch(prompt, environment, observed.revision, actual)
                    raise ReleaseConflict(prompt, environment)
                history = stable_history(session, prompt, environment)
                current = _Current(release, *history, lambda d: read_snapshot(session, prompt, d))
                new = change(current)
                if snapshot is not None:
                    store_snapshot(session, snapshot)
                now = utcnow()
                values = {
                    "stable_digest": new.stable,
                    "canary_digest": new.canary,
                    "canary_weight_bp": new.weight_bp,
                    "revision": actual + 1,
                    "updated_at": now,
                    "updated_by": actor,
                }
                if not write_release(session, release, prompt, env, actual, values):
                    raise ReleaseConflict(prompt, environment)
                session.add(
                    logged := ReleaseLog(
                        prompt=prompt,
                        environment=environment,
                        action=new.action,
                        from_digest=new.from_digest,
                        to_digest=new.to_digest,
                        weight_bp=new.log_weight,
                        revision=actual + 1,
                        actor=actor,
                        reason=reason,
                        forced=forced,
                        allowed_breaking=list(new.allowed_breaking) or None,
                        created_at=now,
                    )
                )
                session.flush()
                release_logged(session, logged)  # its webhooks, committed with it
                applied = Applied(
                    prompt,
                    environment,
                    new.action,
                    actor,
                    actual + 1,
                    new.stable,
                    new.canary,
                    new.weight_bp,
                    managed=within is not None,
                )
                for hook in ([within] if within else []) + self.observers:
                    hook(session, applied)
                state = written_state(session, prompt, env)
                announce(session, prompt, environment, actual + 1)  # other replicas, at commit
        except IntegrityError as exc:
            raise ReleaseConflict(prompt, environment) from exc
        except ReleaseNotFound as exc:
            if exc.suggestions:
                raise
            # A mistyped name, most often: say which released prompt it may have meant.
            released = [s.prompt for s in self.status(None, environment)]
            raise ReleaseNotFound(prompt, environment, released) from None
        return state


def _check_weight(weight_bp: int | None) -> None:
    if weight_bp is not None and not 0 <= weight_bp <= BUCKETS:
        raise InvalidWeight(f"{weight_bp / 100}%")


def _conflicts(current: _Current, version: PromptVersion, role: str) -> list[Conflict]:
    """What in `version` breaks callers of the versions that serve beside it: as canary,
    the stable one; as stable over a running canary (other than itself), both."""
    release = current.release
    if release is None:
        return []
    if role == "canary":
        serving = [("stable", release.stable_digest)]
    elif release.canary_digest and release.canary_digest != version.digest:
        serving = [("stable", release.stable_digest), ("canary", release.canary_digest)]
    else:
        return []
    return conflicts(version, _described([(v, current.read(d)) for v, d in serving]))


def _described(
    serving: list[tuple[str, PromptVersion | None]],
) -> list[tuple[str, PromptVersion]]:
    return [(f"{v.label} ({variant})", v) for variant, v in serving if v is not None]


def _with_canary(current: _Current, prompt: str, environment: str, what: str) -> Release:
    release = current.release
    if release is None:
        raise ReleaseNotFound(prompt, environment)
    if not release.canary_digest:
        raise NoCanary(prompt, environment, what)
    return release
