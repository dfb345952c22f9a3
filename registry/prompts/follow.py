"""Following a remote: how a server's clone keeps up with the repository people push to.

A server reads prompts from its own clone, which nothing else updates. `RemoteFollower`
fetches the remote the clone follows (from the server's background task every
`PROMPTCTL_GIT_FETCH_INTERVAL` seconds, at once when a release request names content the
clone lacks, and on `POST /v1/git/fetch` or a push webhook) and fast-forwards the clone's
tracked branch to the remote's. The clone is read-only, so its local branch may simply be
moved: every reader (version numbering, `HEAD` in a clone whose HEAD is that branch) sees
the new commits without knowing of remotes. A remote branch that does not descend from the
local one (a rewritten history) is not followed: that is a fetch error, and the branch
stays where it was. Only references move; a working tree, if the clone has one, stays as
it was checked out (a server reads commits, never its working tree).

The follower remembers what the last fetches did, for `/readyz` and `GET /v1/git`. It is
driven under the registry's git lock, so a fetch never runs beside another git reader.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from promptctl.registry.errors import (
    FetchFailed,
    NoRemote,
    RegistryError,
    WebhookSignatureInvalid,
)
from promptctl.registry.prompts.gitstore import GitStore, now_utc

SIGNATURE_PREFIX = "sha256="


@dataclass(frozen=True)
class GitStatus:
    """Which commit the clone has on its tracked branch, and how following the remote goes."""

    branch: str
    commit: str | None
    remote: str | None
    fetch_interval: float
    last_fetch_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "branch": self.branch,
            "commit": self.commit,
            "remote": self.remote,
            "fetch_interval": self.fetch_interval,
            "last_fetch_at": when(self.last_fetch_at),
            "last_attempt_at": when(self.last_attempt_at),
            "last_error": self.last_error,
            "last_error_at": when(self.last_error_at),
        }


@dataclass(frozen=True)
class _Attempt:
    """One fetch: when it started (time.monotonic, for coalescing), and how it ended."""

    started: float
    at: datetime
    error: RegistryError | None


class RemoteFollower:
    """Fetches one remote into one clone and moves its tracked branch along."""

    def __init__(self, configured: str | None, interval: float) -> None:
        self.configured = configured or None
        self.interval = interval
        self._last: _Attempt | None = None
        self._last_success: datetime | None = None
        self._last_failure: _Attempt | None = None
        self._lock = threading.Lock()  # guards the record, read without the git lock

    def remote(self, store: GitStore) -> str | None:
        """The remote followed: the configured name or URL, else the clone's `origin`."""
        if self.configured:
            return self.configured
        return "origin" if "origin" in store.remote_names() else None

    def fetch(self, store: GitStore, branch: str, *, since: float | None = None) -> None:
        """Fetch the remote and fast-forward `branch` to the remote's (the caller holds the
        registry's git lock). Raise NoRemote or FetchFailed; a failure is also recorded.

        With `since` (a time.monotonic() reading), a fetch that started after it stands in
        for this one: requests that miss the same content at once fetch once.
        """
        last = self._last
        if since is not None and last is not None and last.started >= since:
            if last.error is not None:
                raise last.error
            return
        remote = self.remote(store)
        if remote is None:
            raise NoRemote()
        attempt_started, attempt_at = time.monotonic(), now_utc()
        try:
            fetched = store.fetch(remote, branch)
            if fetched.tip is None:
                raise FetchFailed(fetched.remote, "no branch", branch=branch)
            ours = store.branch_tip(branch)
            if ours != fetched.tip:
                if ours is not None and not store.is_ancestor(ours, fetched.tip):
                    mismatch = f"ours at {ours[:10]}, theirs at {fetched.tip[:10]}"
                    raise FetchFailed(fetched.remote, "diverged", mismatch, branch=branch)
                store.set_branch(branch, fetched.tip, f"promptctl: follow {remote} {branch}")
        except RegistryError as exc:
            self._record(_Attempt(attempt_started, attempt_at, exc))
            raise
        self._record(_Attempt(attempt_started, attempt_at, None))

    def _record(self, attempt: _Attempt) -> None:
        with self._lock:
            self._last = attempt
            if attempt.error is None:
                self._last_success = attempt.at
            else:
                self._last_failure = attempt

    def status(self, store: GitStore, branch: str) -> GitStatus:
        """What the clone has on `branch` now, and what the last fetches did."""
        remote = self.remote(store)
        with self._lock:
            success, failure = self._last_success, self._last_failure
            last = self._last
        # The last error stands until a later fetch succeeds.
        failed = failure is not None and (success is None or failure.at >= success)
        return GitStatus(
            branch=branch,
            commit=store.branch_tip(branch),
            remote=store.describe_remote(remote) if remote else None,
            fetch_interval=self.interval,
            last_fetch_at=success,
            last_attempt_at=last.at if last else None,
            last_error=str(failure.error) if failed and failure else None,
            last_error_at=failure.at if failed and failure else None,
        )


def check_push_signature(secret: str | None, body: bytes, header: str | None) -> None:
    """Check a push webhook's `X-Hub-Signature-256` (GitHub's: HMAC-SHA256 of the body with
    the shared secret, as `sha256=<hex>`); raise WebhookSignatureInvalid unless it matches."""
    if not secret:
        raise WebhookSignatureInvalid("no secret")
    given = (header or "").strip()
    if not given.startswith(SIGNATURE_PREFIX) or len(given) != len(SIGNATURE_PREFIX) + 64:
        raise WebhookSignatureInvalid("malformed")
    expected = SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise WebhookSignatureInvalid("mismatch")
