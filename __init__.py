"""promptctl: a git-backed prompt registry and release manager.

Applications import the runtime client from here:

    from promptctl import PromptClient, AsyncPromptClient

The subpackages are `promptctl.registry` (the domain), `promptctl.server` (the REST
service), `promptctl.cli` (the `promptctl` command), `promptctl.client` (the runtime
client) and `promptctl.migrations` (the database schema). The client is imported on
first use, so `promptctl` itself imports nothing heavy and the command starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptctl.client import (
        AsyncPromptClient,
        Call,
        ClientError,
        ClientStats,
        OutputContractUnusable,
        OutputInvalid,
        PromptClient,
        PromptUnavailable,
        ResolvedPrompt,
    )

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
]


def __getattr__(name: str) -> Any:
    # PEP 562: the client loads when an application asks for it, not when the CLI starts.
    if name in __all__:
        return getattr(import_module("promptctl.client"), name)
    raise AttributeError(f"module 'promptctl' has no attribute {name!r}")
