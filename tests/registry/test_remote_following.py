"""A server's clone follows its remote: fetches fast-forward the tracked branch, release
requests name the digest they mean and the registry promotes exactly it (fetching first
when it lacks it) or refuses saying what it has; failures are recorded, never raised into
serving. Real remotes: a bare repository on disk that a laptop clone pushes to."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from remotes import NAME, Remotes

from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import (
    FetchFailed,
    NeverStableHere,
    NoRemote,
    VersionNotFound,
    VersionNotOnServer,
    WebhookSignatureInvalid,
)
from promptctl.registry.prompts.follow import RemoteFollower, check_push_signature
from promptctl.registry.prompts.gitstore import GitStore, redact_url
from promptctl.registry.releases.actions import Promote, Rollback

ENV = "staging"


@pytest.fixture
def remotes(tmp_path) -> Remotes:
    """origin.git with translate v1..v4, pushed from the laptop."""
    return Remotes(tmp_path).with_versions(4)


@pytest.fixture
def make_registry(migrated_database_url) -> Iterator:
    built: list[Registry] = []

    def make(path, *, follow: bool = True, **settings) -> Registry:
        registry = Registry(Settings(repo=path, database_url=migrated_database_url, **settings))
        if follow:
            registry.follower  # noqa: B018 - as create_app does: this registry follows
        built.append(registry)
        return registry

    yield make
    for registry in built:
        registry.close()


@pytest.fixture
def server(remotes, make_registry) -> Registry:
    """A server's registry over its own clone of origin (v1..v4), following origin."""
    return make_registry(remotes.clone("server").path)


def promote(registry: Registry, **fields) -> str:
    return registry.perform(Promote(prompt=NAME, environment=ENV, actor="t", **fields)).stable.label


def test_a_fetch_fast_forwards_the_tracked_branch_to_the_remotes(server, remotes):
    pushed = remotes.laptop.version(5)
    assert server.git_status().commit != pushed
    status = server.fetch_remote()
    assert (status.branch, status.commit) == ("main", pushed)
    assert status.remote.startswith("origin (")
    assert status.last_fetch_at is not None
    assert status.last_error is None
    assert server.library.get(NAME, "v5").number == 5


def test_a_bare_clone_and_a_remote_given_as_a_path_are_followed_too(remotes, make_registry):
    mirror = make_registry(remotes.clone("mirror", bare=True).path, git_remote=None)
    pushed = remotes.laptop.version(5)
    assert mirror.fetch_remote().commit == pushed
    store = GitStore(remotes.clone("other").path)
    follower = RemoteFollower(str(remotes.origin), interval=0)
    remotes.laptop.version(6)
    follower.fetch(store, "main")
    assert store.branch_tip("main") == remotes.laptop.git("rev-parse", "HEAD")
    assert follower.status(store, "main").remote == str(remotes.origin)


def test_promoting_a_digest_the_clone_lacks_fetches_it_first(server, remotes):
    laptop = Registry(Settings(repo=remotes.laptop.path))
    remotes.laptop.version(5)
    pinned = laptop.pin(Promote(prompt=NAME, environment=ENV))
    assert (pinned.ref, pinned.commit) == ("HEAD", remotes.laptop.git("rev-parse", "HEAD"))
    assert promote(server, digest=pinned.digest, commit=pinned.commit, ref="HEAD") == "v5"


def test_promoting_a_ref_the_clone_lacks_fetches_it_first(server, remotes):
    remotes.laptop.version(5)
    assert promote(server, ref="v5") == "v5"


def test_a_digest_that_was_never_pushed_is_refused_saying_what_the_server_has(server, remotes):
    laptop = Registry(Settings(repo=remotes.laptop.path))
    commit = remotes.laptop.version(5, push=False)
    pinned = laptop.pin(Promote(prompt=NAME, environment=ENV, ref="v5"))
    with pytest.raises(VersionNotOnServer) as raised:
        promote(server, digest=pinned.digest, commit=pinned.commit, ref="v5")
    tip = server.git_status().commit
    message = str(raised.value)
    assert message.startswith(f"{NAME} {pinned.digest[:12]} (v5 from commit {commit[:10]})")
    assert f"which has {NAME} at v4 (" in message
    assert f"on main@{tip[:10]}" in message
    fetched = f"fetched origin ({remotes.origin}) just now: still not there (was it pushed?)"
    assert message.endswith(fetched)
    assert raised.value.status == 409
    assert server.status(NAME, ENV) == []


def test_a_registry_that_follows_nothing_never_fetches(remotes, make_registry):
    """The CLI's registry: an unknown reference is an error, the user's refs stay put."""
    laptop_clone = remotes.clone("elsewhere")
    registry = make_registry(laptop_clone.path, follow=False)
    remotes.laptop.version(5)
    with pytest.raises(VersionNotFound, match="it has v1..v4"):
        promote(registry, ref="v5")
    assert laptop_clone.git("rev-parse", "origin/main") != remotes.laptop.git("rev-parse", "HEAD")


def test_an_unreachable_remote_is_recorded_and_the_clone_keeps_serving(remotes, make_registry):
    registry = make_registry(remotes.clone("server").path, git_remote=None)
    registry.follower.configured = str(remotes.root / "gone.git")
    with pytest.raises(FetchFailed, match="it is unreachable") as raised:
        registry.fetch_remote()
    assert raised.value.status == 502
    status = registry.git_status()
    assert status.last_error == str(raised.value)
    assert status.last_fetch_at is None
    assert promote(registry, ref="v4") == "v4"  # git reads go on
    # A later fetch that works clears the error.
    registry.follower.configured = "origin"
    assert registry.fetch_remote().last_error is None


def test_a_rewritten_remote_history_is_not_followed(server, remotes):
    before = server.git_status().commit
    remotes.laptop.git("reset", "-q", "--hard", "HEAD~1")
    remotes.laptop.commit("another 4", {"prompts/translate.prompt": "Something else\n"})
    remotes.laptop.git("push", "-q", "--force", "origin", "HEAD")
    with pytest.raises(FetchFailed, match="does not descend from ours"):
        server.fetch_remote()
    assert server.git_status().commit == before


def test_a_clone_without_a_remote_says_so(make_registry, git_repo):
    git_repo.commit("one", {"prompts/translate.prompt": "Hello\n"})
    registry = make_registry(git_repo.path)
    assert registry.git_status().remote is None
    with pytest.raises(NoRemote, match="PROMPTCTL_GIT_REMOTE"):
        registry.fetch_remote()


@pytest.fixture
def asks_for_a_password() -> Iterator[str]:
    """An HTTP 'git server' that answers every request 401 (Basic); yields its repo URL."""

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the handler's API
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prompts.git"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("credentials", ["", "ci:s3cret-token@"])
def test_a_refused_authentication_is_a_fetch_failure_that_hides_the_password(
    remotes, asks_for_a_password, credentials
):
    url = asks_for_a_password.replace("http://", f"http://{credentials}")
    store = GitStore(remotes.clone("server").path)
    with pytest.raises(FetchFailed, match="authentication failed") as raised:
        RemoteFollower(url, interval=0).fetch(store, "main")
    assert "s3cret" not in str(raised.value)
    if credentials:
        assert "ci:***@127.0.0.1" in str(raised.value)


def test_urls_are_shown_without_their_password():
    assert redact_url("https://x:tok@github.com:443/o/r.git") == "https://x:***@github.com:443/o/r.git"
    assert redact_url("https://github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_url("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_rollback_to_a_digest_names_it_when_it_was_never_stable_here(server, remotes):
    promote(server, ref="v3")
    promote(server, ref="v4")
    v2 = server.library.get(NAME, "v2").digest
    with pytest.raises(NeverStableHere, match="was never stable in staging"):
        server.perform(Rollback(prompt=NAME, environment=ENV, to_ref=v2, actor="t"))
    v3 = server.library.get(NAME, "v3").digest
    rolled = server.perform(Rollback(prompt=NAME, environment=ENV, to_ref=v3, actor="t"))
    assert rolled.stable.label == "v3"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_push_webhook_signature_is_checked_with_the_shared_secret():
    body = b'{"ref": "refs/heads/main"}'
    check_push_signature("s3cret", body, signature("s3cret", body))
    for secret, header, problem in [
        ("s3cret", signature("other", body), "does not match the body"),
        ("s3cret", signature("s3cret", body + b" "), "does not match the body"),
        ("s3cret", "sha1=abc", "must be 'sha256=<hex digest>'"),
        ("s3cret", None, "must be 'sha256=<hex digest>'"),
        (None, signature("s3cret", body), "takes no webhooks"),
    ]:
        with pytest.raises(WebhookSignatureInvalid, match=problem) as raised:
            check_push_signature(secret, body, header)
        assert raised.value.status == 401


def test_requests_that_miss_content_together_fetch_once(server, remotes):
    asked = time.monotonic()
    remotes.laptop.version(5)
    first = server.fetch_remote(since=asked)
    remotes.laptop.version(6)
    again = server.fetch_remote(since=asked)  # a fetch started after `asked` stands in
    assert again.last_attempt_at == first.last_attempt_at
    assert again.commit == first.commit
    assert server.fetch_remote().commit == remotes.laptop.git("rev-parse", "HEAD")
