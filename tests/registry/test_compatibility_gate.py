"""Versions that serve side by side must accept the same calls: the release gate, and review
and `diff --env` naming the same incompatibilities by the same rules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import IncompatibleVersion, ReleaseError
from promptctl.registry.prompts import contract
from promptctl.registry.releases.actions import Complete, Promote, Ramp

NAME = "p"
ENV = "development"
CHAT_BODY = '{% message "user" %}{{ ticket }}{% endmessage %}\n'
TEXT_BODY = "{{ ticket }}\n"


def prompt(
    extra: str = "",
    *,
    strict: bool = False,
    output: str = "{format: json}",
    body: str = CHAT_BODY,
) -> str:
    """A prompt taking `ticket` and the declarations in `extra` (input lines)."""
    head = "strict: true\n" if strict else ""
    return f"---\n{head}output: {output}\ninput:\n  ticket: {{type: string}}\n{extra}---\n{body}"


def schema(properties: str, required: str = "[]", defs: str = "{}") -> str:
    """An inline output contract: a JSON object with these properties (YAML flow style)."""
    return (
        f"{{format: json, schema: {{type: object, properties: {properties}, "
        f"required: {required}, $defs: {defs}}}}}"
    )


# (base, head, the kinds of incompatibility both review and the gate find)
CASES = {
    "an optional variable": (prompt(), prompt("  audience: {type: string, default: all}\n"), []),
    "a required variable": (prompt(), prompt("  audience: {type: string}\n"), [contract.REQUIRED]),
    "a variable made required": (
        prompt("  tone: {type: string, default: warm}\n"),
        prompt("  tone: {type: string}\n"),
        [contract.BECAME_REQUIRED],
    ),
    "a changed type": (
        prompt("  n: {type: integer, default: 1}\n"),
        prompt("  n: {type: string, default: one}\n"),
        [contract.TYPE_CHANGED],
    ),
    "enum values removed": (
        prompt("  tier: {type: string, enum: [free, pro], default: pro}\n"),
        prompt("  tier: {type: string, enum: [pro], default: pro}\n"),
        [contract.ENUM_NARROWED],
    ),
    "enum values added": (
        prompt("  tier: {type: string, enum: [free, pro], default: pro}\n"),
        prompt("  tier: {type: string, enum: [free, pro, team], default: pro}\n"),
        [],
    ),
    "an enum where there was none": (
        prompt("  tier: {type: string, default: pro}\n"),
        prompt("  tier: {type: string, enum: [pro], default: pro}\n"),
        [contract.ENUM_NARROWED],
    ),
    "a variable removed from a tolerant prompt": (
        prompt("  tone: {type: string, default: warm}\n"),
        prompt(),
        [],
    ),
    "a variable removed from a strict prompt": (
        prompt("  tone: {type: string, default: warm}\n", strict=True),
        prompt(strict=True),
        [contract.REMOVED],
    ),
    "a prompt made strict": (prompt(), prompt(strict=True), [contract.BECAME_STRICT]),
    "an optional variable the strict old version refuses": (
        prompt(strict=True),
        prompt("  audience: {type: string, default: all}\n", strict=True),
        [contract.REFUSED_BY_OLD],
    ),
    "chat to text": (prompt(), prompt(body=TEXT_BODY), [contract.KIND_CHANGED]),
    "another output": (prompt(), prompt(output="{format: text}"), [contract.OUTPUT_CHANGED]),
    "a required key of an object": (
        prompt("  customer: {type: object, properties: {id: string}, default: {id: x}}\n"),
        prompt(
            "  customer: {type: object, properties: {id: string, plan: string}, "
            "default: {id: x, plan: y}}\n"
        ),
        [contract.REQUIRED],
    ),
    "another item type": (
        prompt("  tags: {type: array, items: string, default: []}\n"),
        prompt("  tags: {type: array, items: integer, default: []}\n"),
        [contract.TYPE_CHANGED],
    ),
    "several at once": (
        prompt("  tier: {type: string, enum: [free, pro], default: pro}\n"),
        prompt(
            "  audience: {type: string}\n  tier: {type: string, enum: [pro], default: pro}\n",
            output="{format: text}",
        ),
        [contract.REQUIRED, contract.ENUM_NARROWED, contract.OUTPUT_CHANGED],
    ),
    "an optional output property": (
        prompt(output=schema("{category: {type: string}}", "[category]")),
        prompt(output=schema("{category: {type: string}, note: {type: string}}", "[category]")),
        [],
    ),
    "an output property dropped": (
        prompt(output=schema("{category: {type: string}, note: {type: string}}")),
        prompt(output=schema("{category: {type: string}}")),
        [contract.OUTPUT_PROPERTY_REMOVED],
    ),
    "an output property newly required": (
        prompt(output=schema("{category: {type: string}, note: {type: string}}", "[category]")),
        prompt(
            output=schema("{category: {type: string}, note: {type: string}}", "[category, note]")
        ),
        [contract.OUTPUT_NEWLY_REQUIRED],
    ),
    "an output property of another type": (
        prompt(output=schema("{score: {type: integer}}")),
        prompt(output=schema("{score: {type: string}}")),
        [contract.OUTPUT_TYPE_CHANGED],
    ),
    "a nested output property dropped behind a $ref": (
        prompt(
            output=schema(
                "{customer: {$ref: '#/$defs/c'}}",
                defs="{c: {properties: {id: {type: string}, plan: {type: string}}}}",
            )
        ),
        prompt(
            output=schema(
                "{customer: {$ref: '#/$defs/c'}}", defs="{c: {properties: {id: {type: string}}}}"
            )
        ),
        [contract.OUTPUT_PROPERTY_REMOVED],
    ),
    "an output schema where there was none": (
        prompt(),
        prompt(output=schema("{category: {type: string}}", "[category]")),
        [],
    ),
    "the output schema removed": (
        prompt(output=schema("{category: {type: string}}")),
        prompt(),
        [contract.OUTPUT_SCHEMA_REMOVED],
    ),
    "a new description": (
        prompt("  tone: {type: string, default: warm}\n"),
        prompt("  tone: {type: string, default: warm, description: how to sound}\n"),
        [],
    ),
}


@pytest.fixture
def make_registry(git_repo, migrated_database_url) -> Iterator:
    made: list[Registry] = []

    def make() -> Registry:
        registry = Registry(Settings(repo=git_repo.path, database_url=migrated_database_url))
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close()


def promote(registry: Registry, ref: str, **fields) -> object:
    return registry.perform(Promote(prompt=NAME, environment=ENV, ref=ref, actor="t", **fields))


@pytest.mark.parametrize(("base", "head", "codes"), CASES.values(), ids=CASES.keys())
def test_review_the_release_gate_and_diff_env_agree(git_repo, make_registry, base, head, codes):
    first = git_repo.commit("base", {f"prompts/{NAME}.prompt": base})
    git_repo.commit("head", {f"prompts/{NAME}.prompt": head})
    registry = make_registry()
    [reviewed] = registry.review(first, "HEAD").prompts
    promote(registry, "v1")
    try:
        promote(registry, "v2", canary_bp=1000)
        gated = []
    except IncompatibleVersion as exc:
        gated = exc.conflicts
    assert [c.incompatibility.code for c in gated] == codes
    assert reviewed.breaking == [str(c.incompatibility) for c in gated]
    diffed = registry.diff(NAME, "v2", environment=ENV).breaking
    assert [str(c) for c in diffed] == [str(c) for c in gated]
    assert all(c.against == "v1 (stable)" for c in gated)


# -- the gate, through the facade -------------------------------------------------------

V6 = prompt("  tier: {type: string, enum: [free, pro], default: free}\n")
V7 = prompt(
    "  audience: {type: string, enum: [dev, ops], default: dev}\n"
    "  tier: {type: string, enum: [free, pro], default: free}\n"
)
V8 = prompt("  audience: {type: string}\n  tier: {type: string, enum: [pro], default: pro}\n")


@pytest.fixture
def registry(git_repo, make_registry) -> Registry:
    """p v1 (V6), v2 (V7: an optional variable more), v3 (V8: a required one, a narrower
    enum); v1 is stable."""
    for number, text in enumerate((V6, V7, V8), start=1):
        git_repo.commit(f"v{number}", {f"prompts/{NAME}.prompt": text})
    registry = make_registry()
    promote(registry, "v1")
    return registry


def test_a_canary_that_breaks_callers_of_stable_is_refused_with_every_incompatibility(registry):
    before = registry.status(NAME, ENV)[0]
    with pytest.raises(IncompatibleVersion) as caught:
        promote(registry, "v3", canary_bp=1000)
    assert isinstance(caught.value, ReleaseError)
    assert caught.value.status == 409
    assert str(caught.value) == (
        "p@v3 cannot start as canary in development: against v1 (stable): new required "
        "variable 'audience' without a default: callers do not send it yet; against v1 "
        "(stable): variable 'tier' no longer accepts free (--allow-breaking to release it "
        "anyway)"
    )
    assert registry.status(NAME, ENV)[0] == before
    assert [e.action for e in registry.history(NAME, ENV)] == ["promote"]


def test_allow_breaking_starts_the_canary_and_the_log_records_what_it_let_through(registry):
    state = promote(registry, "v3", canary_bp=1000, allow_breaking=True, reason="coordinated")
    assert state.canary.label == "v3"
    entry = registry.history(NAME, ENV)[0]
    assert (entry.action, entry.reason, entry.forced) == ("canary_start", "coordinated", False)
    assert entry.allowed_breaking == (
        "against v1 (stable): new required variable 'audience' without a default: callers "
        "do not send it yet",
        "against v1 (stable): variable 'tier' no longer accepts free",
    )
    assert entry.to_json()["allowed_breaking"] == list(entry.allowed_breaking)
    assert registry.history(NAME, ENV)[1].allowed_breaking == ()


def test_allow_breaking_records_nothing_when_nothing_breaks(registry):
    promote(registry, "v2", canary_bp=1000, allow_breaking=True)
    assert registry.history(NAME, ENV)[0].allowed_breaking == ()


def test_ramping_and_completing_an_allowed_canary_are_not_checked_again(registry):
    promote(registry, "v3", canary_bp=1000, allow_breaking=True)
    said = {"prompt": NAME, "environment": ENV, "actor": "t"}
    assert registry.perform(Ramp(weight_bp=5000, **said)).weight_bp == 5000
    assert registry.perform(Complete(**said)).stable.label == "v3"


def test_a_stable_promotion_over_a_running_canary_must_accept_the_callers_of_both(registry):
    promote(registry, "v2", canary_bp=1000)
    with pytest.raises(IncompatibleVersion) as caught:
        promote(registry, "v3")
    found = [str(c) for c in caught.value.conflicts]
    assert found == [
        "against v1 (stable): new required variable 'audience' without a default: callers "
        "do not send it yet",
        "against v1 (stable): variable 'tier' no longer accepts free",
        "against v2 (canary): variable 'audience' became required",
        "against v2 (canary): variable 'tier' no longer accepts free",
    ]
    assert "cannot become stable while a canary runs in development" in str(caught.value)
    assert promote(registry, "v3", allow_breaking=True).canary is None


def test_promoting_the_canary_itself_as_stable_is_like_completing_it(registry):
    promote(registry, "v3", canary_bp=1000, allow_breaking=True)
    assert promote(registry, "v3").stable.label == "v3"


def test_a_stable_promotion_with_no_canary_replaces_the_version_unchecked(registry):
    # One version serves before and after: whether callers are ready is review's question.
    assert promote(registry, "v3").stable.label == "v3"
    assert registry.history(NAME, ENV)[0].allowed_breaking == ()


def test_a_canary_promoted_from_another_environment_is_checked_too(registry):
    promote(registry, "v3")  # stable in development, where no canary runs
    registry.perform(Promote(prompt=NAME, environment="staging", ref="v1", actor="t"))
    with pytest.raises(IncompatibleVersion):
        registry.perform(
            Promote(prompt=NAME, environment="staging", source=ENV, canary_bp=500, actor="t")
        )
    state = registry.perform(
        Promote(
            prompt=NAME,
            environment="staging",
            source=ENV,
            canary_bp=500,
            actor="t",
            allow_breaking=True,
        )
    )
    assert state.canary.label == "v3"


def test_diff_env_names_the_incompatibilities_with_every_version_serving(registry):
    promote(registry, "v2", canary_bp=1000)
    result = registry.diff(NAME, "v3", environment=ENV)
    assert result.old.label == "v1"
    assert sorted({c.against for c in result.breaking}) == ["v1 (stable)", "v2 (canary)"]
    assert result.to_json()["breaking"][0] == {
        "against": "v1 (stable)",
        "code": contract.REQUIRED,
        "variable": "audience",
        "message": "new required variable 'audience' without a default: callers do not send it yet",
    }


# -- hostile schemas: comparing them stays bounded ---------------------------------------

# Every level refers twice to the next: walked path by path, 2**levels places.
FAN_OUT = 40


def fanned_schema(bottom: str) -> str:
    """An output schema whose $refs fan out twice per level for FAN_OUT levels."""
    levels = ", ".join(
        f"l{i}: {{type: object, properties: {{a: {{$ref: '#/$defs/l{i + 1}'}}, "
        f"b: {{$ref: '#/$defs/l{i + 1}'}}}}}}"
        for i in range(FAN_OUT)
    )
    return schema("{top: {$ref: '#/$defs/l0'}}", defs=f"{{{levels}, l{FAN_OUT}: {bottom}}}")


def test_a_schema_referring_to_itself_is_compared_once_per_place(git_repo, make_registry):
    looping = "{type: object, properties: {x: {$ref: '#/$defs/n'}, y: {$ref: '#/$defs/n'}%s}}"
    base = schema("{root: {$ref: '#/$defs/n'}}", defs="{n: %s}" % (looping % ", z: {type: string}"))
    head = schema("{root: {$ref: '#/$defs/n'}}", defs="{n: %s}" % (looping % ""))
    first = git_repo.commit("base", {f"prompts/{NAME}.prompt": prompt(output=base)})
    git_repo.commit("head", {f"prompts/{NAME}.prompt": prompt(output=head)})
    [reviewed] = make_registry().review(first, "HEAD").prompts
    assert reviewed.breaking == ["output property 'root.z' was removed: code reading it breaks"]


def test_a_schema_whose_refs_fan_out_is_compared_within_a_bound(git_repo, make_registry):
    base = fanned_schema("{type: object, properties: {leaf: {type: string}}}")
    head = fanned_schema("{type: object, properties: {leaf: {type: integer}}}")
    first = git_repo.commit("base", {f"prompts/{NAME}.prompt": prompt(output=base)})
    git_repo.commit("head", {f"prompts/{NAME}.prompt": prompt(output=head)})
    [reviewed] = make_registry().review(first, "HEAD").prompts
    assert reviewed.breaking[-1] == (
        "the output schemas are too intricate to compare in full (their $refs fan out "
        "past 5,000 places): check the change by hand"
    )
