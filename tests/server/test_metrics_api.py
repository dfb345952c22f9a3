"""The metrics API over HTTP: ingest, scores, summaries, bad input, tokens, telemetry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from promptctl.registry.auth import TokenService
from promptctl.server.app import create_app


@pytest.fixture
def repo(greet_repo):
    """greet v1..v3 and summarize v1 (see conftest.greet_repo)."""
    return greet_repo


def event(digest: str, **changes) -> dict:
    base = {
        "event_id": uuid.uuid4().hex,
        "prompt": "greet",
        "env": "staging",
        "digest": digest,
        "ts": datetime.now(UTC).isoformat(),
        "latency_ms": 250.0,
    }
    return {**base, **changes}


def post(client: TestClient, events: list[dict], path: str = "/v1/metrics", key: str = "events"):
    response = client.post(path, json={key: events})
    assert response.status_code == 200, response.text
    return response.json()


def counter(client: TestClient, name: str) -> int:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"promptctl_{name} "):
            return int(float(line.split()[1]))
    return 0


def test_ingest_answers_every_event_and_keeps_the_valid_ones(client, promote):
    digest = promote()
    answer = post(
        client,
        [
            event(digest, event_id="ok-1", input_tokens=1000, output_tokens=100),
            event(digest, event_id="slow-clock", ts="2999-01-01T00:00:00Z"),
            event(digest, event_id="negative", latency_ms=-1),
            event(digest, event_id="typo", latencyms=3),
            event(digest, event_id="no-prompt", prompt="nope"),
            event(digest, event_id="ok-2", quality=0.5, error=True),
        ],
    )
    assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (2, 0, 4)
    assert [(r["event_id"], r["status"]) for r in answer["results"]] == [
        ("ok-1", "accepted"),
        ("slow-clock", "rejected"),
        ("negative", "rejected"),
        ("typo", "rejected"),
        ("no-prompt", "rejected"),
        ("ok-2", "accepted"),
    ]
    reasons = [r.get("reason") for r in answer["results"]]
    assert "in the future" in reasons[1]
    assert reasons[2] == "latency_ms must not be negative, got -1"
    assert reasons[3] == "unknown field 'latencyms'"
    assert reasons[4] == "'nope' has no release in staging"

    summary = client.get("/v1/prompts/greet/metrics", params={"env": "staging"}).json()
    (version,) = summary["versions"]
    assert (version["label"], version["variant"], version["digest"]) == ("v3", "stable", digest)
    assert (version["count"], version["errors"], version["error_rate"]) == (2, 1, 0.5)
    assert version["latency_ms"]["p50"] == pytest.approx(250.0)
    assert version["cost_usd"]["total"] == pytest.approx((1000 * 0.15 + 100 * 0.60) / 1e6)
    assert version["quality"] == {"mean": 0.5, "ci95": None, "count": 1}
    assert counter(client, "ingest_events_accepted_total") == 2
    assert counter(client, "ingest_events_rejected_total") == 4


def test_a_retried_batch_counts_once(client, promote):
    digest = promote()
    batch = [event(digest) for _ in range(5)]
    assert post(client, batch)["accepted"] == 5
    again = post(client, batch)
    assert (again["accepted"], again["duplicate"]) == (0, 5)
    assert {r["reason"] for r in again["results"]} == {"already stored"}
    summary = client.get("/v1/prompts/greet/metrics", params={"env": "staging"}).json()
    assert summary["versions"][0]["count"] == 5
    assert counter(client, "ingest_events_duplicate_total") == 5


def test_a_bare_list_is_a_batch_too(client, promote):
    digest = promote()
    response = client.post("/v1/metrics", json=[event(digest)])
    assert response.json()["accepted"] == 1


BAD_BODIES = [
    (b'{"events": [', 400, "Malformed JSON", "not valid JSON"),
    (b"\xff\xfe\x00", 400, "Malformed JSON", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "Malformed JSON", "not valid JSON"),
    (b'{"events": {"a": 1}}', 422, "Invalid metrics batch", 'the body must be {"events"'),
    (b'"events"', 422, "Invalid metrics batch", 'the body must be {"events"'),
    (b'{"events": [], "more": 1}', 422, "Invalid metrics batch", "unknown field 'more'"),
]


@pytest.mark.parametrize("path", ["/v1/metrics", "/v1/metrics/scores"])
def test_a_body_that_is_not_a_batch_is_a_problem_not_a_500(client, problem_of, path):
    for body, status, title, detail in BAD_BODIES:
        if path.endswith("scores"):
            body = body.replace(b'"events"', b'"scores"')
            detail = detail.replace('"events"', '"scores"')
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        document = problem_of(response, status)
        assert document["title"] == title, body[:40]
        assert detail in document["detail"], body[:40]
    assert counter(client, "ingest_batches_refused_total") == len(BAD_BODIES)


def test_a_batch_over_the_limit_is_refused_with_413_and_nothing_is_stored(
    client, promote, problem_of
):
    digest = promote()
    response = client.post("/v1/metrics", json={"events": [event(digest)] * 1001})
    document = problem_of(response, 413)
    assert document["detail"] == (
        "the batch has 1001 items, over the limit of 1000: split it and send again"
    )
    assert counter(client, "ingest_batches_refused_total") == 1
    summary = client.get("/v1/prompts/greet/metrics", params={"env": "staging"}).json()
    assert summary["versions"] == []


def test_every_kind_of_bad_event_is_a_rejection_with_a_reason(client, promote):
    digest = promote()
    bad = [
        "a string",
        {},
        event(digest, quality=1.01),
        event(digest, latency_ms=-0.5),
        event(digest, input_tokens="many"),
        event(digest, env="qa"),
        {**event(digest), "digest": "0" * 64},
        event(digest, ts="soon"),
        event(digest, attributes="tenant=acme"),
    ]
    answer = post(client, bad)
    assert answer["rejected"] == len(bad)
    assert all(r["reason"] for r in answer["results"])
    assert answer["results"][0]["event_id"] is None


def test_scores_attach_quality_once_and_show_in_the_summary(client, promote):
    digest = promote()
    events = [event(digest, event_id=f"e{i}") for i in range(3)]
    post(client, events)
    answer = post(
        client,
        [
            {"event_id": "e0", "quality": 1.0},
            {"event_id": "e1", "quality": 0.0},
            {"event_id": "e0", "quality": 0.5},
            {"event_id": "unknown", "quality": 0.5},
            {"event_id": "e2", "quality": 1.5},
        ],
        path="/v1/metrics/scores",
        key="scores",
    )
    assert [r["status"] for r in answer["results"]] == [
        "accepted", "accepted", "duplicate", "rejected", "rejected"
    ]  # fmt: skip
    summary = client.get("/v1/prompts/greet/metrics", params={"env": "staging"}).json()
    quality = summary["versions"][0]["quality"]
    assert quality["count"] == 2
    assert quality["mean"] == pytest.approx(0.5)
    assert quality["ci95"] == [0.0, 1.0]  # two opposite scores: clamped to [0, 1]
    assert counter(client, "ingest_scores_accepted_total") == 2


def test_summary_splits_versions_and_variants_over_a_window(client, promote):
    stable = promote(ref="HEAD~1")
    canary = promote(ref="HEAD", canary_bp=2500)
    now = datetime.now(UTC)
    post(
        client,
        [event(stable, latency_ms=100.0 + i) for i in range(30)]
        + [event(canary, latency_ms=300.0 + i, quality=0.8) for i in range(10)]
        + [event(stable, ts=(now - timedelta(hours=3)).isoformat())],
    )
    response = client.get(
        "/v1/prompts/greet/metrics", params={"env": "staging", "since": "1h", "until": "now"}
    )
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["prompt"], summary["environment"]) == ("greet", "staging")
    rows = {(v["label"], v["variant"]): v for v in summary["versions"]}
    assert sorted(rows) == [("v2", "stable"), ("v3", "canary")]
    assert rows[("v2", "stable")]["count"] == 30  # the event three hours ago is outside
    assert rows[("v3", "canary")]["count"] == 10
    assert rows[("v2", "stable")]["latency_ms"]["p99"] == pytest.approx(129.0, rel=0.02)
    assert rows[("v3", "canary")]["quality"]["mean"] == pytest.approx(0.8)
    everything = client.get("/v1/prompts/greet/metrics", params={"env": "staging"}).json()
    assert sum(v["count"] for v in everything["versions"]) == 41


def test_summary_problems(client, promote, problem_of):
    promote()
    url = "/v1/prompts/greet/metrics"
    assert problem_of(client.get(url), 422)["title"] == "Invalid request"
    assert problem_of(client.get(url, params={"env": "qa"}), 404)["detail"].startswith(
        "unknown environment 'qa'"
    )
    bad_time = problem_of(client.get(url, params={"env": "staging", "since": "soon"}), 400)
    assert "'soon' is not a time" in bad_time["detail"]
    too_far = problem_of(client.get(url, params={"env": "staging", "until": "10" * 12 + "d"}), 400)
    assert "is not a time" in too_far["detail"]
    empty = problem_of(
        client.get(url, params={"env": "staging", "since": "now", "until": "1h"}), 400
    )
    assert "window is empty" in empty["detail"]
    never = problem_of(client.get("/v1/prompts/nope/metrics", params={"env": "staging"}), 404)
    assert never["detail"] == "'nope' has never been released, so it has no metrics"


def test_with_tokens_ingest_needs_metrics_write_and_summaries_need_read(settings, repo, promote):
    settings = settings.model_copy(update={"tokens": True})
    app = create_app(settings)
    ctx = app.state.ctx
    tokens = TokenService(ctx.registry.database)
    writer, _ = tokens.create("app", "metrics:write")
    staging_only, _ = tokens.create("staging-app", "metrics:write", "staging")
    reader, _ = tokens.create("dashboard", "read")
    ctx.cache.load_all()
    for env in ("staging", "development"):
        version = ctx.registry.library.get("greet", "HEAD")
        ctx.registry.releases.promote(version, env, actor="test")
        ctx.cache.refresh_release("greet", env)
    digest = ctx.registry.library.get("greet", "HEAD").digest

    def auth(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    with TestClient(app) as client:
        batch = {"events": [event(digest), event(digest, env="development")]}
        assert client.post("/v1/metrics", json=batch).status_code == 401
        assert client.post("/v1/metrics", json=batch, headers=auth(reader)).status_code == 403
        limited = client.post("/v1/metrics", json=batch, headers=auth(staging_only)).json()
        assert [r["status"] for r in limited["results"]] == ["accepted", "rejected"]
        assert "development" in limited["results"][1]["reason"]
        full = client.post("/v1/metrics", json=batch, headers=auth(writer)).json()
        assert [r["status"] for r in full["results"]] == ["duplicate", "accepted"]
        scores = {"scores": [{"event_id": batch["events"][1]["event_id"], "quality": 1}]}
        scored = client.post("/v1/metrics/scores", json=scores, headers=auth(staging_only))
        assert scored.json()["results"][0]["status"] == "rejected"
        url = "/v1/prompts/greet/metrics"
        assert client.get(url, params={"env": "staging"}).status_code == 401
        assert client.get(url, params={"env": "staging"}, headers=auth(writer)).status_code == 403
        read = client.get(url, params={"env": "staging"}, headers=auth(reader))
        assert read.status_code == 200
        assert read.json()["versions"][0]["count"] == 1


def test_the_openapi_document_describes_the_batches(client):
    paths = client.get("/openapi.json").json()["paths"]
    events = paths["/v1/metrics"]["post"]["requestBody"]["content"]["application/json"]
    item = events["schema"]["properties"]["events"]["items"]
    assert item["required"] == ["event_id", "prompt", "env", "digest", "latency_ms"]
    assert "/v1/metrics/scores" in paths
    assert "/v1/prompts/{name}/metrics" in paths
