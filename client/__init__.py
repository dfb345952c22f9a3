"""The runtime client applications import to fetch prompts and report metrics.

from client import PromptClient

prompts = PromptClient("http://promptctl:8080", token=..., environment="production")
prompt = prompts.get("support/triage", key=user_id)
messages = prompt.render(ticket=text)
with prompts.track(prompt) as call:
    reply = llm(messages, model=prompt.model, **prompt.params)
    call.record(input_tokens=..., output_tokens=..., cost_usd=...)
"""

from client._base import ClientStats
from client._core import Call, ClientError, PromptUnavailable, ResolvedPrompt
from client.aio import AsyncPromptClient
from client.sync import PromptClient

__all__ = [
    "AsyncPromptClient",
    "Call",
    "ClientError",
    "ClientStats",
    "PromptClient",
    "PromptUnavailable",
    "ResolvedPrompt",
]
