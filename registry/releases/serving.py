"""The serving cache: every release and its content in memory, with response bytes ready.

Resolve and render answer from here without a database query or a git read. A release
change made through this process refreshes its entry at once; changes made by another
replica arrive by a PostgreSQL notification (`listen`, which reloads that one release)
and, whatever the database, by `refresh_if_changed`, which the server calls on a short
timer and which costs one small query when nothing changed. Every release that loads
with a new revision is told to the cache's `changes` hub, which feeds the change streams
(see registry/releases/changes.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptctl.registry.auth import TokenInfo, TokenService
from promptctl.registry.errors import EnvironmentNotFound, ReleaseNotFound
from promptctl.registry.prompts.promptversion import PromptVersion
from promptctl.registry.prompts.render_limits import RenderLimits
from promptctl.registry.prompts.rendering import Rendered
from promptctl.registry.releases.assignment import variant_for
from promptctl.registry.releases.changes import (
    ChangeHub,
    Listener,
    ReleaseChange,
    changed_since,
    cursors_of,
    latest_cursor,
)
from promptctl.registry.releases.documents import release_document, version_document
from promptctl.registry.releases.routing import Variant
from promptctl.registry.releases.service import ReleaseService
from promptctl.registry.releases.values import ReleaseState


def _dump(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class Resolved:
    """One resolution: which version a request gets, and the bytes to answer with."""

    version: PromptVersion
    variant: Variant
    body: bytes
    etag: str


@dataclass(frozen=True)
class ServedRelease:
    """A release with its versions and prebuilt response bodies."""

    state: ReleaseState
    stable: Resolved
    canary: Resolved | None
    release_body: bytes
    release_etag: str

    def resolve(self, key: str | None) -> Resolved:
        if self.canary is None:
            return self.stable
        return self.canary if variant_for(self.state, key) == "canary" else self.stable


def build_served(
    state: ReleaseState, stable: PromptVersion, canary: PromptVersion | None
) -> ServedRelease:
    def resolved(version: PromptVersion, variant: Variant) -> Resolved:
        doc = {"environment": state.environment, "variant": variant, **version_document(version)}
        return Resolved(version, variant, _dump(doc), f'"{version.digest[:32]}-{variant[0]}"')

    release_doc = release_document(state, stable, canary)
    return ServedRelease(
        state=state,
        stable=resolved(stable, "stable"),
        canary=resolved(canary, "canary") if canary else None,
        release_body=_dump(release_doc),
        release_etag=f'"r{state.revision}-{stable.digest[:16]}"',
    )


class ServingCache:
    """Releases, environments and tokens in memory, refreshed when the database changes."""

    def __init__(self, releases: ReleaseService, tokens: TokenService | None = None) -> None:
        self.releases = releases
        self.tokens_service = tokens
        self._lock = threading.Lock()
        self._served: dict[tuple[str, str], ServedRelease] = {}
        self._environments: dict[str, bool] = {}
        self._tokens: dict[str, TokenInfo] = {}
        self._fingerprint: tuple[int, ...] | None = None
        self.changes = ChangeHub()
        self.hits = 0
        self.misses = 0
        self.reloads = 0

    # -- reads on the hot path: memory only ------------------------------------------

    def served(self, prompt: str, environment: str) -> ServedRelease:
        entry = self._served.get((prompt, environment))
        if entry is not None:
            self.hits += 1
            return entry
        self.misses += 1
        if environment not in self._environments:
            raise EnvironmentNotFound(environment, list(self._environments))
        raise ReleaseNotFound(prompt, environment)

    def hit(self, prompt: str, environment: str) -> ServedRelease | None:
        """The release if it is in memory, counted as a hit; None, counting nothing, when
        not: the caller then asks `served`, which counts the miss and raises why."""
        entry = self._served.get((prompt, environment))
        if entry is not None:
            self.hits += 1
        return entry

    def resolve(self, prompt: str, environment: str, key: str | None = None) -> Resolved:
        return self.served(prompt, environment).resolve(key)

    def render(
        self,
        prompt: str,
        environment: str,
        key: str | None,
        variables: Mapping[str, Any],
        limits: RenderLimits | None = None,
    ) -> tuple[Resolved, Rendered]:
        resolved = self.resolve(prompt, environment, key)
        return resolved, resolved.version.render(variables, limits=limits)

    def is_protected(self, environment: str) -> bool:
        return self._environments.get(environment, False)

    def environments(self) -> dict[str, bool]:
        return dict(self._environments)

    def token(self, token_hash: str) -> TokenInfo | None:
        return self._tokens.get(token_hash)

    def entries(self) -> list[ServedRelease]:
        return list(self._served.values())

    # -- loading ---------------------------------------------------------------------

    def load_all(self) -> None:
        """Load releases, environments and tokens; only changed releases load content."""
        with self._lock:
            fingerprint = self.releases.fingerprint()
            first = self.reloads == 0
            if first:  # read before the states, so that the states are at least this new
                with self.releases.db.session() as session:
                    self.changes.cursor = latest_cursor(session)
            states = self.releases.status()
            changed = [
                st
                for st in states
                if (old := self._served.get((st.prompt, st.environment))) is None
                or old.state.revision != st.revision
            ]
            contents = self.releases.contents(changed)
            changed_keys = {(st.prompt, st.environment) for st in changed}
            served = {}
            for st in states:
                key = (st.prompt, st.environment)
                if key in changed_keys:
                    canary = contents[(st.prompt, st.canary.digest)] if st.canary else None
                    served[key] = build_served(st, contents[(st.prompt, st.stable.digest)], canary)
                else:
                    served[key] = self._served[key]  # unchanged: keep the compiled templates
            environments = {e.name: e.protected for e in self.releases.environments()}
            tokens = self.tokens_service.active() if self.tokens_service else {}
            self._served, self._environments, self._tokens = served, environments, tokens
            self._fingerprint = fingerprint
            self.reloads += 1
            if not first:
                self._tell([served[(st.prompt, st.environment)] for st in changed])

    def refresh_if_changed(self) -> bool:
        """Reload when anything changed (here or in another replica); return whether it did."""
        if self.releases.fingerprint() == self._fingerprint:
            return False
        self.load_all()
        return True

    def refresh_release(self, prompt: str, environment: str) -> None:
        """Reload one release right after this process changed it, so it shows at once."""
        with self._lock:
            loaded = self.releases.served_releases(prompt, environment)
            served = dict(self._served)
            old = served.get((prompt, environment))
            if loaded:
                state, stable, canary = loaded[0]
                if old is not None and old.state.revision >= state.revision:
                    return  # already this new (a notification of our own change, say)
                new = build_served(state, stable, canary)
                served[(prompt, environment)] = new
            else:
                served.pop((prompt, environment), None)
            self._served = served
            if loaded:
                self._tell([new])

    def refresh_notified(self, prompt: str, environment: str, revision: int) -> None:
        """Reload one release another process announced, unless this one is that new."""
        old = self._served.get((prompt, environment))
        if old is None or old.state.revision < revision:
            self.refresh_release(prompt, environment)

    def listen(self) -> Listener | None:
        """On PostgreSQL, start listening for other processes' release changes; None on
        a database without notifications (the timer's `refresh_if_changed` serves)."""
        engine = self.releases.db.engine
        if engine.dialect.name != "postgresql":
            return None
        return Listener(engine, self.refresh_notified, self._catch_up).start()

    def _catch_up(self) -> None:
        """After (re)connecting the listener: what changed while nobody listened."""
        if self._fingerprint is not None:
            self.refresh_if_changed()

    # -- what the change streams read ----------------------------------------------

    def _tell(self, changed: list[ServedRelease]) -> None:
        """Publish newly loaded releases to the change streams (under the lock, so that
        they are told in the order they loaded)."""
        if not changed:
            return
        keys = [(e.state.prompt, e.state.environment, e.state.revision) for e in changed]
        with self.releases.db.session() as session:
            cursors = cursors_of(session, keys)
        changes = [change_of(e, cursors[k]) for e, k in zip(changed, keys, strict=True)]
        self.changes.publish(sorted(changes, key=lambda c: c.cursor))

    def released_in(
        self, environment: str, prompts: frozenset[str] = frozenset()
    ) -> list[ServedRelease]:
        """The releases of `environment` (only `prompts`, when given), from memory."""
        return [
            e
            for (prompt, env), e in self._served.items()
            if env == environment and (not prompts or prompt in prompts)
        ]

    def replay(
        self, environment: str, after: int, prompts: frozenset[str] = frozenset()
    ) -> list[ReleaseChange] | None:
        """The current state of every release of `environment` changed after cursor
        `after`, oldest change first; None when nothing can be replayed from `after`."""
        with self.releases.db.session() as session:
            changed = changed_since(session, environment, after)
        if changed is None:
            return None
        found = []
        for prompt, cursor in changed.items():
            entry = self._served.get((prompt, environment))
            if entry is not None and (not prompts or prompt in prompts):
                found.append(change_of(entry, cursor))
        return sorted(found, key=lambda c: c.cursor)


def change_of(entry: ServedRelease, cursor: int) -> ReleaseChange:
    """The change event of a served release at `cursor`."""
    state = entry.state
    return ReleaseChange(
        prompt=state.prompt,
        environment=state.environment,
        revision=state.revision,
        cursor=cursor,
        etag=entry.release_etag,
        body=entry.release_body,
    )
