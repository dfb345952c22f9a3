"""The bodies a delivery sends: the standard JSON event, or a Slack message.

The standard body is built once, when the event is written to the outbox, and stored as
the exact bytes every attempt sends (and signs), so a delivery retried after a crash is
byte for byte what it would have been. A Slack message is made from it when sent.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from promptctl.registry.releases.values import timestamp


def new_message_id() -> str:
    """Return a new event id (`webhook-id`): `msg_` and 32 hex digits."""
    return "msg_" + uuid.uuid4().hex


def event_body(message_id: str, event_type: str, moment: datetime, data: dict[str, Any]) -> str:
    """Return the standard JSON body of an event: type, id, timestamp and data."""
    document = {"type": event_type, "id": message_id, "timestamp": timestamp(moment), "data": data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def slack_body(body: str) -> bytes:
    """Return a Slack incoming-webhook message (`{"text": …}`) telling a standard body."""
    event = json.loads(body)
    return json.dumps({"text": slack_text(event)}, ensure_ascii=False).encode()


def slack_text(event: dict[str, Any]) -> str:
    """Say an event in one line of Slack markup."""
    kind, data = event["type"], event.get("data") or {}
    prompt, environment = data.get("prompt"), data.get("environment")
    if kind.startswith("release."):
        where = f"*{prompt}* in *{environment}*"
        line = f"{where}: {_release_words(kind, data)}"
        line += f" (by {data.get('actor')})" if data.get("actor") else ""
        if data.get("reason"):
            line += f" — {data['reason']}"
        return line
    if kind.startswith("environment."):
        state = "protected" if data.get("protected") else "no longer protected"
        return f"Environment *{environment}* is now {state}"
    if kind.startswith("rollout."):
        decision = kind.split(".", 1)[1].replace("_", " ")
        line = f"Rollout of *{prompt}* in *{environment}*: {decision}"
        if data.get("reason"):
            line += f" — {data['reason']}"
        return line
    if kind == "webhook.test":
        return "Test message from promptctl: this webhook works"
    return f"{kind}: {json.dumps(data, ensure_ascii=False)[:500]}"


def _label(version: dict[str, Any] | None) -> str:
    return str(version.get("label")) if version else "nothing"


def _release_words(kind: str, data: dict[str, Any]) -> str:
    old, new = _label(data.get("from")), _label(data.get("to"))
    before, after = data.get("from_weight", 0), data.get("to_weight", 0)
    if kind == "release.promoted":
        return f"{new} is stable (was {old})"
    if kind == "release.canary_started":
        return f"{new} started as canary at {after:g}% (stable {old})"
    if kind == "release.canary_ramped":
        return f"canary {new} ramped {before:g}% → {after:g}%"
    if kind == "release.canary_completed":
        return f"canary {new} completed: now stable (was {old})"
    if kind == "release.canary_aborted":
        return f"canary {old} aborted: all traffic back to {new}"
    if kind == "release.rolled_back":
        return f"rolled back to {new} (from {old})"
    return kind
