"""Release entries: the release state of one prompt as the client holds it, resolved
locally with the routing function the server uses, and the prompt a call gets."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from promptctl.registry.prompts.outputs import OutputInvalid
from promptctl.registry.prompts.promptversion import PromptVersion, version_from_document
from promptctl.registry.prompts.rendering import Rendered
from promptctl.registry.releases.routing import assign


class ClientError(Exception):
    """Base of the client's own errors."""


class PromptUnavailable(ClientError):
    """A prompt could not be fetched and no cached, disk or bundled copy exists."""


@dataclass(frozen=True)
class ResolvedPrompt:
    """A prompt version chosen for one call: render it, and track the call with it."""

    name: str
    environment: str
    version: int | None
    digest: str
    variant: str
    model: str | None
    params: Mapping[str, Any]
    front_matter: Mapping[str, Any]
    stale: bool
    source: str
    _version: PromptVersion = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"v{self.version}" if self.version else self.digest[:12]

    def render(self, **variables: Any) -> list[dict[str, str]] | str:
        """Validate the variables and render: chat messages, or text for a text prompt."""
        rendered = self.rendered(variables)
        if rendered.messages is not None:
            return [m.to_dict() for m in rendered.messages]
        return rendered.text or ""

    def rendered(self, variables: Mapping[str, Any]) -> Rendered:
        """Render with the very renderer and validation the server uses."""
        return self._version.render(variables)

    def parse(self, text: str) -> Any:
        """Parse the model's answer as this version's JSON output and check its schema.

        Return the parsed value, or raise OutputInvalid naming the JSON pointer and the
        rule broken (`prose-before-json` with the offset, `not-json`, `required`, `type`,
        ...). Inside `client.track(...)` for this prompt, the call records `output_valid`
        by itself. The schema's validator is compiled once per version and needs the
        `outputs` extra (`pip install 'promptctl[outputs]'`); a version without a schema
        only needs its answer to be JSON.
        """
        try:
            value = self._version.parse_output(text)
        except OutputInvalid:
            self._record_validity(False)
            raise
        self._record_validity(True)
        return value

    def _record_validity(self, valid: bool) -> None:
        # Imported here: _events imports this module.
        from promptctl.client._events import current_call

        call = current_call()
        # Only the call tracking this very version: parsing another prompt's answer inside
        # it says nothing of this call's output.
        if call is not None and call.prompt.digest == self.digest:
            call.record(output_valid=valid)


class ReleaseEntry:
    """The release state of one prompt in one environment, as the client holds it.

    The two possible answers (stable, canary) are built once, so a cache hit costs a
    routing hash and a dictionary lookup.
    """

    def __init__(self, document: dict[str, Any], etag: str | None, source: str) -> None:
        if not isinstance(document, dict):
            raise TypeError(f"a release must be a JSON object, not {type(document).__name__}")
        canary_doc = document.get("canary")
        self.name: str = document["prompt"]
        self.environment: str = document["environment"]
        if not isinstance(self.name, str) or not isinstance(self.environment, str):
            raise TypeError("'prompt' and 'environment' must be strings")
        self.document = document
        self.stable = version_from_document(document["stable"], source)
        self.canary = version_from_document(canary_doc, source) if canary_doc else None
        # "canary_weight_bp" in documents from servers and bundles before the shared JSON
        # vocabulary; "weight_bp" since.
        weight = document.get("weight_bp", document.get("canary_weight_bp"))
        self.weight_bp = int(weight or 0)
        self.etag = etag
        self.fetched_at = time.monotonic()
        self.source = source
        self._stale = False
        self._answers = self._build_answers()

    @classmethod
    def from_document(cls, document: dict[str, Any], etag: str | None, source: str) -> ReleaseEntry:
        return cls(document, etag, source)

    @property
    def rank(self) -> tuple[int, float]:
        """How recent this release state is: see `release_rank`."""
        return release_rank(self.document)

    @property
    def stale(self) -> bool:
        return self._stale

    @stale.setter
    def stale(self, value: bool) -> None:
        if value != self._stale:
            self._stale = value
            self._answers = self._build_answers()

    def _build_answers(self) -> dict[str, ResolvedPrompt]:
        answers = {"stable": self._answer(self.stable, "stable")}
        if self.canary is not None:
            answers["canary"] = self._answer(self.canary, "canary")
        return answers

    def _answer(self, version: PromptVersion, variant: str) -> ResolvedPrompt:
        prompt = version.prompt
        return ResolvedPrompt(
            name=self.name,
            environment=self.environment,
            version=version.number,
            digest=version.digest,
            variant=variant,
            model=prompt.model,
            params=prompt.params,
            front_matter=prompt.front_matter,
            stale=self._stale,
            source=self.source,
            _version=version,
        )

    def resolve(self, key: str | None) -> ResolvedPrompt:
        """Pick the variant with the shared routing function."""
        canary = self.canary
        if canary is None:
            return self._answers["stable"]
        return self._answers[assign(self.name, canary.digest, self.weight_bp, key)]


def release_rank(document: Mapping[str, Any]) -> tuple[int, float]:
    """Order two states of one release: (revision, updated_at as a timestamp), higher is newer.

    The registry raises a release's `revision` by one with every action on it (promote,
    ramp, complete, abort, rollback), in the transaction that makes the change, so of two
    documents of the same release the one with the higher revision is the later state,
    whatever the clocks of the machines that acted said. `updated_at` only breaks a tie.
    A document that lacks either (a hand-made bundle, or one from an older promptctl)
    counts as older than any that has it: an unknown age never wins over a known one.
    """
    revision = document.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool):
        revision = -1
    try:
        updated = datetime.fromisoformat(document["updated_at"])
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)
        timestamp = updated.timestamp()
    except (KeyError, TypeError, ValueError):
        timestamp = float("-inf")
    return revision, timestamp


def newest(*entries: ReleaseEntry | None) -> ReleaseEntry | None:
    """The entry with the newest release state (`release_rank`); the first one on a tie."""
    found = [e for e in entries if e is not None]
    return max(found, key=lambda e: e.rank) if found else None
