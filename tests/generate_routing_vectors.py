"""Write tests/routing_vectors.json: sticky canary assignment vectors from DESIGN.md's formula.

    h = sha256(f"{prompt}:{canary_digest}:{key}".encode()).digest()
    bucket = int.from_bytes(h[:8], "big") % 10000
    variant = "canary" if bucket < canary_weight_bp else "stable"

Computed here with hashlib alone (never with registry.releases.routing) so the vectors are an
independent statement of the contract. Run `python tests/generate_routing_vectors.py` to
rewrite the file; the output is deterministic, so a diff means the formula changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

OUT = Path(__file__).with_name("routing_vectors.json")
BUCKETS = 10_000
PROMPTS = ["greet", "support/triage", "a", "billing/refund.v2"]
KEYS = [
    "user-1",
    "user-2",
    "user-42",
    "tenant:acme",
    "session-9f8e7d",
    "alice@example.com",
    "",
    " ",
    "émilie",
    "ユーザー-7",
    "用户",
    "🙂-emoji",
    "Ünïcødé ke¥",
    "key:with:colons",
    "x" * 200,
]
# The weights the contract most needs pinned down, then some ordinary ones.
EDGE_WEIGHTS = [0, 1, 5000, 9999, 10000]
OTHER_WEIGHTS = [10, 250, 1250, 3333, 7500]


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bucket(prompt: str, digest: str, key: str) -> int:
    h = hashlib.sha256(f"{prompt}:{digest}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") % BUCKETS


def vector(prompt: str, digest: str, key: str, weight_bp: int) -> dict:
    b = bucket(prompt, digest, key)
    return {
        "prompt": prompt,
        "digest": digest,
        "key": key,
        "weight_bp": weight_bp,
        "bucket": b,
        "variant": "canary" if b < weight_bp else "stable",
    }


def vectors() -> list[dict]:
    out = []
    for p_index, prompt in enumerate(PROMPTS):
        digest = digest_of(f"{prompt} canary")
        for k_index, key in enumerate(KEYS):
            # Each pair gets two edge weights and one ordinary weight, rotating.
            position = p_index * len(KEYS) + k_index
            for weight in (
                EDGE_WEIGHTS[position % len(EDGE_WEIGHTS)],
                EDGE_WEIGHTS[(position + 2) % len(EDGE_WEIGHTS)],
                OTHER_WEIGHTS[position % len(OTHER_WEIGHTS)],
            ):
                out.append(vector(prompt, digest, key, weight))
    # Boundaries: a weight equal to the bucket is stable, one above it is canary.
    digest = digest_of("boundary canary")
    for key in KEYS[:10]:
        b = bucket("greet", digest, key)
        out.append(vector("greet", digest, key, b))
        out.append(vector("greet", digest, key, b + 1))
    # The same key under a new canary digest lands in a fresh bucket.
    for n in range(1, 11):
        out.append(vector("greet", digest_of(f"canary {n}"), "user-1", 5000))
    return out


FORMULA = [
    'h = sha256(f"{prompt}:{digest}:{key}".encode("utf-8")).digest()',
    'bucket = int.from_bytes(h[:8], "big") % 10000',
    'variant = "canary" if bucket < weight_bp else "stable"',
]


def render(data: list[dict]) -> str:
    """One vector a line, so a change to the file reads as a change to single vectors."""
    lines = ",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in data)
    formula = json.dumps(FORMULA, ensure_ascii=False)
    return f'{{\n "formula": {formula},\n "vectors": [\n{lines}\n ]\n}}\n'


def main() -> None:
    data = vectors()
    OUT.write_text(render(data), encoding="utf-8")
    print(f"wrote {len(data)} vectors to {OUT}")


if __name__ == "__main__":
    main()
