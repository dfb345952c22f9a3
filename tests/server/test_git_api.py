"""The server's clone over the API: GET /v1/git and /readyz say which commit it has and how
following its remote goes; POST /v1/git/fetch (a release token, or a signed GitHub push
webhook) fetches; promote names a digest and gets exactly it, fetched first when the clone
lacks it, or a 409 saying what the server has. A remote that fails never stops serving.
Real remotes: a bare repository on disk that a laptop clone pushes to."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient
from remotes import NAME, Remotes
from support import refused_port, wait_until

from promptctl.registry.core import Registry, Settings
from promptctl.registry.releases.actions import Promote
from promptctl.server.app import create_app
from promptctl.server.settings import ServerSettings

SECRET = "webhook-s3cret"
JSON = {"content-type": "application/json"}


@pytest.fixture
def remotes(tmp_path) -> Remotes:
    """origin.git with translate v1..v4 pushed from the laptop, and the server's clone."""
    remotes = Remotes(tmp_path).with_versions(4)
    remotes.server = remotes.clone("server")
    return remotes


@pytest.fixture
def start(remotes, migrated_database_url) -> Iterator[Callable[..., TestClient]]:
    """A client of a server over its clone of origin; keywords override its settings."""
    with ExitStack() as stack:

        def run(**overrides: Any) -> TestClient:
            given: dict[str, Any] = {
                "repo": remotes.server.path,
                "database_url": migrated_database_url,
                "poll_interval": 0.2,
                "git_fetch_interval": 0,
                "git_webhook_secret": SECRET,
                **overrides,
            }
            return stack.enter_context(TestClient(create_app(ServerSettings(**given))))

        yield run


def pinned(remotes: Remotes, ref: str = "HEAD") -> Promote:
    """The promotion the laptop's CLI sends: its ref read in its own repository."""
    laptop = Registry(Settings(repo=remotes.laptop.path))
    return laptop.pin(Promote(prompt=NAME, environment="staging", ref=ref))


def promote_body(action: Promote, **extra: Any) -> dict[str, Any]:
    body = {"env": "staging", "ref": action.ref, "digest": action.digest, "commit": action.commit}
    return {**body, **extra}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {**JSON, "X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest}"}


def test_git_and_readyz_say_which_commit_the_server_has(start, remotes):
    client = start()
    status = client.get("/v1/git").json()
    assert (status["branch"], status["commit"]) == ("main", remotes.server.git("rev-parse", "HEAD"))
    assert status["remote"] == f"origin ({remotes.origin})"
    assert status["fetch_interval"] == 0
    assert (status["last_fetch_at"], status["last_error"]) == (None, None)
    assert client.get("/readyz").json()["git"] == status


def test_a_fetch_request_moves_the_server_to_what_was_pushed(start, remotes):
    client = start()
    pushed = remotes.laptop.version(5)
    fetched = client.post("/v1/git/fetch", headers=JSON)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["commit"] == pushed
    assert fetched.json()["last_fetch_at"] is not None
    versions = client.get(f"/v1/prompts/{NAME}/versions").json()["versions"]
    assert versions[0]["label"] == "v5"


def test_the_server_fetches_on_its_interval(start, remotes):
    client = start(git_fetch_interval=0.1)
    pushed = remotes.laptop.version(5)
    wait_until(lambda: client.get("/v1/git").json()["commit"] == pushed, what="the fetch")


def test_a_signed_push_webhook_fetches(start, remotes):
    client = start()
    pushed = remotes.laptop.version(5)
    body = json.dumps({"ref": "refs/heads/main", "after": pushed}).encode()
    answered = client.post("/v1/git/fetch", content=body, headers=signed(body))
    assert answered.status_code == 200, answered.text
    assert answered.json()["commit"] == pushed


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ("wrong secret", "does not match the body"),
        ("no signature", "must be 'sha256=<hex digest>'"),
    ],
)
def test_a_webhook_with_a_bad_signature_is_a_401_and_fetches_nothing(
    start, remotes, problem_of, headers, detail
):
    client = start()
    before = client.get("/v1/git").json()["commit"]
    remotes.laptop.version(5)
    body = b'{"ref": "refs/heads/main"}'
    sent = signed(body, "another secret")
    if headers == "no signature":
        del sent["X-Hub-Signature-256"]
    problem = problem_of(client.post("/v1/git/fetch", content=body, headers=sent), 401)
    assert detail in problem["detail"]
    assert problem["detail"].endswith(("nothing fetched", "PROMPTCTL_GIT_WEBHOOK_SECRET?)"))
    status = client.get("/v1/git").json()
    assert (status["commit"], status["last_attempt_at"]) == (before, None)


def test_a_server_without_a_webhook_secret_takes_no_webhooks(start, problem_of):
    client = start(git_webhook_secret=None)
    body = b"{}"
    problem = problem_of(client.post("/v1/git/fetch", content=body, headers=signed(body)), 401)
    assert "no PROMPTCTL_GIT_WEBHOOK_SECRET" in problem["detail"]


def test_fetching_needs_a_release_token_when_tokens_are_on(start, problem_of):
    client = start(tokens=True)
    registry = client.app.state.ctx.registry
    read, _ = registry.tokens.create("reader", "read")
    release, _ = registry.tokens.create("ci", "release", "staging")
    registry.serving.load_all()
    problem_of(client.post("/v1/git/fetch", headers=JSON), 401)
    bearer = {**JSON, "Authorization": f"Bearer {read}"}
    problem_of(client.post("/v1/git/fetch", headers=bearer), 403)
    assert client.get("/v1/git", headers=bearer).status_code == 200
    bearer = {**JSON, "Authorization": f"Bearer {release}"}
    assert client.post("/v1/git/fetch", headers=bearer).status_code == 200


def test_promote_by_digest_fetches_what_the_server_lacks(start, remotes):
    client = start()
    remotes.laptop.version(5)
    action = pinned(remotes)
    promoted = client.post(f"/v1/prompts/{NAME}/promote", json=promote_body(action))
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["stable"]["label"], promoted.json()["stable"]["digest"]) == (
        "v5",
        action.digest,
    )


def test_a_digest_never_pushed_is_a_409_saying_what_the_server_has(start, remotes, problem_of):
    client = start()
    commit = remotes.laptop.version(5, push=False)
    action = pinned(remotes, "v5")
    answer = client.post(f"/v1/prompts/{NAME}/promote", json=promote_body(action))
    problem = problem_of(answer, 409)
    tip = remotes.server.git("rev-parse", "HEAD")
    assert problem["title"] == "Version not on the server"
    assert problem["detail"] == (
        f"{NAME} {action.digest[:12]} (v5 from commit {commit[:10]}) is not in the server's "
        f"repository, which has {NAME} at v4 ({pinned(remotes, 'v4').digest[:12]}) on "
        f"main@{tip[:10]}; fetched origin ({remotes.origin}) just now: still not there "
        "(was it pushed?)"
    )
    assert client.get("/v1/releases").json() == []


def test_an_unreachable_remote_is_a_502_and_the_server_keeps_serving(
    start, remotes, problem_of
):
    with refused_port() as port:
        client = start(git_remote=f"http://127.0.0.1:{port}/prompts.git")
        ok = client.post(f"/v1/prompts/{NAME}/promote", json={"env": "staging", "ref": "v4"})
        assert ok.status_code == 200, ok.text
        problem = problem_of(client.post("/v1/git/fetch", headers=JSON), 502)
        assert problem["title"] == "Fetch failed"
        assert problem["detail"].startswith(
            f"cannot fetch from http://127.0.0.1:{port}/prompts.git: it is unreachable ("
        )
        status = client.get("/v1/git").json()
        assert status["last_error"] == problem["detail"]
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["git"]["last_error"]) == (200, problem["detail"])
        resolved = client.get(f"/v1/prompts/{NAME}/resolve", params={"env": "staging"})
        assert resolved.json()["label"] == "v4"
        # A release naming content the clone lacks says why it could not fetch it.
        remotes.laptop.version(5)
        answer = client.post(f"/v1/prompts/{NAME}/promote", json=promote_body(pinned(remotes)))
        detail = problem_of(answer, 409)["detail"]
        assert detail.endswith(problem["detail"])
        assert client.get("/v1/releases").json()[0]["revision"] == 1


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"digest": "ABC"}, 422, "digest: String should match pattern"),
        ({"digest": "a" * 64, "from_env": "development"}, 400, "not both"),
        ({"commit": "b" * 40}, 400, "give the digest too"),
    ],
)
def test_promote_refuses_a_malformed_digest_request(start, problem_of, body, status, detail):
    client = start()
    answer = client.post(f"/v1/prompts/{NAME}/promote", json={"env": "staging", **body})
    assert detail in problem_of(answer, status)["detail"]
