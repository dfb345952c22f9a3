"""The client reads release documents of servers and bundles older and newer than itself:
the shared vocabulary's keys (`prompt`, `weight_bp`) and the ones before it (`name`,
`canary_weight_bp`)."""

from __future__ import annotations

import hashlib

import pytest

from promptctl.client._entries import ReleaseEntry

TEXT = "Hello {{ who }}.\n"
DIGEST = hashlib.sha256(TEXT.encode()).hexdigest()
CANARY_TEXT = "Hi {{ who }}.\n"
CANARY = hashlib.sha256(CANARY_TEXT.encode()).hexdigest()


def version(text: str, digest: str, number: int, *, old: bool) -> dict:
    doc = {"version": number, "digest": digest, "path": "greet.prompt", "source": text}
    doc["root"] = "prompts"
    return {**doc, "name": "greet"} if old else {**doc, "prompt": "greet"}


def release(*, old: bool) -> dict:
    weight = {"canary_weight_bp": 10_000} if old else {"weight": 100.0, "weight_bp": 10_000}
    return {
        "prompt": "greet",
        "environment": "production",
        "stable": version(TEXT, DIGEST, 1, old=old),
        "canary": version(CANARY_TEXT, CANARY, 2, old=old),
        "revision": 3,
        "updated_at": "2026-03-02T09:15:27+00:00",
        **weight,
    }


@pytest.mark.parametrize("old", [True, False], ids=["older server", "this server"])
def test_a_release_document_routes_and_renders_whichever_keys_it_has(old):
    entry = ReleaseEntry.from_document(release(old=old), None, "bundle")
    assert entry.weight_bp == 10_000
    chosen = entry.resolve("user-1")
    assert (chosen.name, chosen.variant, chosen.version) == ("greet", "canary", 2)
    assert chosen.render(who="Ada") == "Hi Ada."
