"""Rendering parity: for every example prompt and every one of its samples, the client
renders exactly what the server's POST /render returns for the same version."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from client_kit import CANARY_PROMPT, ENV, EXAMPLES, ServerProcess, example_names, key_for

from promptctl.client import PromptClient
from promptctl.registry.errors import VariablesInvalid
from promptctl.registry.prompts.promptfile import parse_prompt_file


def _samples() -> list[Any]:
    cases = []
    for name in example_names():
        relpath = f"{name}.prompt"
        samples = parse_prompt_file(relpath, (EXAMPLES / relpath).read_text("utf-8")).samples
        variants = ("stable", "canary") if name == CANARY_PROMPT else ("stable",)
        for variant in variants:
            for index, sample in enumerate(samples):
                cases.append(pytest.param(name, variant, sample, id=f"{name}-{variant}-{index}"))
    return cases


SAMPLES = _samples()


@pytest.fixture(scope="module")
def prompts(shared_server: ServerProcess) -> Iterator[PromptClient]:
    with PromptClient(shared_server.url, environment=ENV, ttl=300, timeout=10) as client:
        yield client


def test_every_example_prompt_has_samples_to_compare() -> None:
    names = {case.values[0] for case in SAMPLES}
    assert names == set(example_names())
    assert len(names) == 8
    assert len(SAMPLES) >= 2 * len(names)


@pytest.mark.parametrize(("name", "variant", "sample"), SAMPLES)
def test_the_client_renders_every_sample_exactly_as_the_server_does(
    shared_server: ServerProcess, prompts: PromptClient, name: str, variant: str, sample: dict
) -> None:
    release = shared_server.release(name, ENV).json()
    key = key_for(name, release, variant)
    prompt = prompts.get(name, key=key)

    response = shared_server.post(
        f"/v1/prompts/{name}/render", json={"env": ENV, "key": key, "variables": sample}
    )
    assert response.status_code == 200, response.text
    remote = response.json()

    assert (prompt.variant, prompt.digest, prompt.version) == (
        remote["variant"],
        remote["digest"],
        remote["version"],
    )
    rendered = prompt.render(**sample)
    if "messages" in remote:
        assert rendered == remote["messages"]
        assert rendered
        assert all(m["content"] for m in rendered)
    else:
        assert rendered == remote["text"]
        assert rendered.strip()


def test_invalid_variables_are_refused_alike_by_the_client_and_the_server(
    shared_server: ServerProcess, prompts: PromptClient
) -> None:
    prompt = prompts.get("support/triage", key="user-1")
    variables = {"tier": "platinum"}  # no ticket, and a tier outside the enum

    with pytest.raises(VariablesInvalid) as refused:
        prompt.render(**variables)
    response = shared_server.post(
        "/v1/prompts/support/triage/render",
        json={"env": ENV, "key": "user-1", "variables": variables},
    )

    assert response.status_code == 422
    assert response.json()["detail"] == str(refused.value)
    assert "ticket" in str(refused.value)
    assert "platinum" in str(refused.value)
