"""Whether an answer of the app is what its OpenAPI document says: the status is documented
for the operation and the body validates against that status's schema.

Shared by the fuzz test and the per-route tests. The schemas are JSON Schema 2020-12 (the
document is OpenAPI 3.1), checked with jsonschema_rs, which schemathesis brings.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs


def media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def body_problems(
    document: dict[str, Any], path: str, method: str, status: int, content_type: str, body: bytes
) -> list[str]:
    """What in this answer breaks the document (empty when it conforms).

    `path` is the operation's templated path (`/v1/prompts/{name}/resolve`).
    """
    answers = document["paths"][path][method.lower()]["responses"]
    answer = answers.get(str(status))
    if answer is None:
        return [f"status {status} is not documented (documented: {sorted(answers)})"]
    content = answer.get("content", {})
    if not body:
        return []
    kind = media_type(content_type)
    if kind not in content:
        return [f"content type {kind}, documented {sorted(content)}"]
    schema = content[kind].get("schema")
    if not schema or not kind.endswith("json"):
        return [f"no schema documented for {status} {kind}"] if not schema else []
    rooted = {**schema, "components": document.get("components", {})}
    validator = jsonschema_rs.Draft202012Validator(rooted)
    instance = json.loads(body)
    return [f"{error.instance_path}: {error.message}" for error in validator.iter_errors(instance)]
