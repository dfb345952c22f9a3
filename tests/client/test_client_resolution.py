"""PromptClient against a real server: what `get` returns, local routing, cache and ETags."""

from __future__ import annotations

from collections import Counter

import httpx
from client_kit import CANARY_PROMPT, ENV, RecordingTransport, ServerProcess, key_for
from support import wait_until

from promptctl.client import PromptClient

TICKET = {"ticket": "I was charged twice this month", "tier": "pro"}


def server_render(server: ServerProcess, name: str, env: str, key: str, variables: dict) -> dict:
    response = server.post(
        f"/v1/prompts/{name}/render", json={"env": env, "key": key, "variables": variables}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_get_returns_the_released_version_with_its_model_params_and_front_matter(
    shared_server: ServerProcess,
) -> None:
    release = shared_server.release("support/reply", ENV).json()
    with PromptClient(shared_server.url, environment=ENV, timeout=10) as prompts:
        prompt = prompts.get("support/reply", key="user-1")

    stable = release["stable"]
    assert prompt.name == "support/reply"
    assert prompt.environment == ENV
    assert prompt.version == stable["version"] == 1
    assert prompt.label == "v1"
    assert prompt.digest == stable["digest"]
    assert prompt.variant == "stable"
    assert prompt.model == "gpt-4o"
    assert dict(prompt.params) == {"temperature": 0.4, "max_tokens": 500}
    assert prompt.front_matter == stable["front_matter"]
    assert prompt.front_matter["owner"] == "support-team"  # a key of the team's own, kept
    assert prompt.front_matter["description"].startswith("Draft the agent's next reply")
    assert prompt.stale is False
    assert prompt.source == "server"


def test_get_returns_the_canary_version_for_a_key_routed_to_the_canary(
    shared_server: ServerProcess,
) -> None:
    release = shared_server.release(CANARY_PROMPT, ENV).json()
    with PromptClient(shared_server.url, environment=ENV, timeout=10) as prompts:
        stable = prompts.get(CANARY_PROMPT, key=key_for(CANARY_PROMPT, release, "stable"))
        canary = prompts.get(CANARY_PROMPT, key=key_for(CANARY_PROMPT, release, "canary"))

    assert (stable.variant, stable.version, stable.digest) == (
        "stable",
        1,
        release["stable"]["digest"],
    )
    assert (canary.variant, canary.version, canary.digest) == (
        "canary",
        2,
        release["canary"]["digest"],
    )
    assert canary.front_matter == release["canary"]["front_matter"]


def test_render_gives_the_same_messages_as_the_servers_render_for_each_variant(
    shared_server: ServerProcess,
) -> None:
    release = shared_server.release(CANARY_PROMPT, ENV).json()
    with PromptClient(shared_server.url, environment=ENV, timeout=10) as prompts:
        for variant in ("stable", "canary"):
            key = key_for(CANARY_PROMPT, release, variant)
            prompt = prompts.get(CANARY_PROMPT, key=key)
            remote = server_render(shared_server, CANARY_PROMPT, ENV, key, TICKET)

            assert (remote["variant"], remote["digest"]) == (variant, prompt.digest)
            assert prompt.render(**TICKET) == remote["messages"]


def test_local_routing_agrees_with_the_servers_resolve_for_every_key(
    shared_server: ServerProcess,
) -> None:
    keys = [f"user-{i}" for i in range(300)]
    keys += ["", " ", "tenant/42", "ünïcødé-ключ-🙂", "x" * 500, "user-1", "USER-1"]
    local, remote = {}, {}
    with (
        PromptClient(shared_server.url, environment=ENV, timeout=10) as prompts,
        httpx.Client(base_url=shared_server.url, timeout=10) as http,
    ):
        for key in keys:
            prompt = prompts.get(CANARY_PROMPT, key=key)
            local[key] = (prompt.variant, prompt.digest)
            answer = http.get(
                f"/v1/prompts/{CANARY_PROMPT}/resolve", params={"env": ENV, "key": key}
            ).json()
            remote[key] = (answer["variant"], answer["digest"])

    disagreements = {k: (local[k], remote[k]) for k in keys if local[k] != remote[k]}
    assert not disagreements
    variants = Counter(variant for variant, _ in local.values())
    assert variants["canary"] > 0
    assert variants["stable"] > variants["canary"]  # a 30 % canary


def test_a_cache_hit_makes_no_network_call(
    shared_server: ServerProcess, transport: RecordingTransport
) -> None:
    with PromptClient(
        shared_server.url, environment=ENV, ttl=300, timeout=10, transport=transport
    ) as prompts:
        first = prompts.get(CANARY_PROMPT, key="user-1")
        fetches = transport.count()
        answers = [prompts.get(CANARY_PROMPT, key=f"user-{i % 50}") for i in range(2000)]
        again = prompts.get(CANARY_PROMPT, key="user-1")

        assert fetches == 1
        assert transport.count() == 1
    assert again == first
    assert {a.variant for a in answers} == {"stable", "canary"}


def test_a_cache_hit_still_answers_after_the_server_is_unreachable(
    shared_server: ServerProcess, transport: RecordingTransport, down_url: str
) -> None:
    with PromptClient(
        shared_server.url, environment=ENV, ttl=300, timeout=10, transport=transport
    ) as prompts:
        first = prompts.get("translate")
        transport.route_to(int(down_url.rsplit(":", 1)[1]))  # every request would now fail
        again = prompts.get("translate")

        assert transport.count() == 1
    assert again == first
    assert again.stale is False


def test_after_the_ttl_the_client_revalidates_with_its_etag_and_a_304_keeps_the_entry(
    shared_server: ServerProcess, transport: RecordingTransport
) -> None:
    with PromptClient(
        shared_server.url, environment=ENV, ttl=0.2, timeout=10, transport=transport
    ) as prompts:
        first = prompts.get("translate")
        entry = prompts.entries["translate"]
        etag = shared_server.release("translate", ENV).headers["etag"]

        wait_until(
            lambda: [c for c in transport.calls if c.status == 304][2:],
            what="three revalidations answered 304",
        )
        again = prompts.get("translate")

    revalidations = transport.calls[1:]
    assert transport.calls[0].if_none_match is None
    assert revalidations
    assert all(c.if_none_match == etag for c in revalidations if c.status is not None)
    assert prompts.entries["translate"] is entry
    assert (again.digest, again.version, again.stale) == (first.digest, first.version, False)


def test_a_new_promotion_shows_up_once_the_ttl_has_passed(
    shared_server: ServerProcess, fresh_env: str, transport: RecordingTransport
) -> None:
    release = shared_server.release(CANARY_PROMPT, fresh_env).json()
    key = key_for(CANARY_PROMPT, release, "stable")
    # stream=False: this is about TTL revalidation (the stream's own tests are elsewhere)
    with PromptClient(
        shared_server.url,
        environment=fresh_env,
        ttl=0.2,
        timeout=10,
        transport=transport,
        stream=False,
    ) as prompts:
        before = prompts.get(CANARY_PROMPT, key=key)
        shared_server.promptctl("canary", CANARY_PROMPT, "--env", fresh_env, "--complete")

        after = wait_until(
            lambda: (p := prompts.get(CANARY_PROMPT, key=key)).version == 2 and p,
            what="the completed canary to reach the client",
        )

    assert (before.version, before.variant) == (1, "stable")
    assert (after.version, after.variant) == (2, "stable")
    assert after.digest == release["canary"]["digest"]
    assert (
        after.render(**TICKET)
        == server_render(shared_server, CANARY_PROMPT, fresh_env, key, TICKET)["messages"]
    )
    assert any(c.status == 200 for c in transport.calls[1:])  # a full answer, not a 304
