"""The runtime client applications import to fetch prompts and report metrics.

from promptctl import PromptClient

prompts = PromptClient("http://promptctl:8080", token=..., environment="production",
                       bundle="prompts.bundle.json", cache_dir="/var/cache/myapp/prompts")
prompt = prompts.get("support/triage", key=user_id)
messages = prompt.render(ticket=text)
with prompts.track(prompt) as call:
    reply = llm(messages, model=prompt.model, **prompt.params)
    call.record(input_tokens=..., output_tokens=..., cost_usd=...)
    triage = prompt.parse(reply)  # OutputInvalid if it breaks the version's output schema

`from promptctl import AsyncPromptClient` is the asyncio twin. Importing either loads no
server, database, git or command-line library; httpx loads when a client with a server
is built, and asyncio when AsyncPromptClient is first asked for.

Nothing the client falls back on stops an application: a missing or broken bundle, an
unusable cache_dir or a broken cache file is one warning (logger "promptctl.client")
and the client goes on with what else it has. See PromptClient for the fallback order
and for what `close` does with events it cannot deliver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptctl.client._base import ClientStats
from promptctl.client._entries import ClientError, PromptUnavailable, ResolvedPrompt
from promptctl.client._events import Call, current_call
from promptctl.client.sync import PromptClient
from promptctl.registry.prompts.outputs import OutputContractUnusable, OutputInvalid

if TYPE_CHECKING:
    from promptctl.client.aio import AsyncPromptClient

__all__ = [
    "AsyncPromptClient",
    "Call",
    "ClientError",
    "ClientStats",
    "OutputContractUnusable",
    "OutputInvalid",
    "PromptClient",
    "PromptUnavailable",
    "ResolvedPrompt",
    "current_call",
]


def __getattr__(name: str) -> Any:
    # PEP 562: asyncio (a sixth of the client's import time) loads only for async apps.
    if name == "AsyncPromptClient":
        from promptctl.client.aio import AsyncPromptClient

        return AsyncPromptClient
    raise AttributeError(f"module 'promptctl.client' has no attribute {name!r}")
