"""The runtime client applications import to fetch prompts and report metrics.

from promptctl.client import PromptClient

prompts = PromptClient("http://promptctl:8080", token=..., environment="production")
prompt = prompts.get("support/triage", key=user_id)
messages = prompt.render(ticket=text)
with prompts.track(prompt) as call:
    reply = llm(messages, model=prompt.model, **prompt.params)
    call.record(input_tokens=..., output_tokens=..., cost_usd=...)
"""

from promptctl.client._base import ClientStats
from promptctl.client._core import Call, ClientError, PromptUnavailable, ResolvedPrompt
from promptctl.client.aio import AsyncPromptClient
from promptctl.client.sync import PromptClient

__all__ = [
    "AsyncPromptClient",
    "Call",
    "ClientError",
    "ClientStats",
    "PromptClient",
    "PromptUnavailable",
    "ResolvedPrompt",
]
