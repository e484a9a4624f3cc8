"""The context-window guard: before any call, does system + memory + new message + the answer limit fit?"""
from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import BaseMessage, SystemMessage

from chains.multimodal import estimate_prompt_tokens
from chains.tokens import tool_definition_tokens
from config.catalog import Deployment


@dataclass(frozen=True)
class ContextCheck:
    prompt_tokens: int
    max_output_tokens: int
    context_window: int

    @property
    def over_by(self) -> int:
        return self.prompt_tokens + self.max_output_tokens - self.context_window

    @property
    def fits(self) -> bool:
        return self.over_by <= 0

    def message(self, deployment_name: str) -> str:
        over = self.over_by
        return (f"This message does not fit in {deployment_name}'s context window: {over} token{'s' if over != 1 else ''} over "
                f"({self.prompt_tokens} prompt + {self.max_output_tokens} answer limit > {self.context_window}). "
                "Nothing was sent.")


def check_context(system_prompt: str, messages: list[BaseMessage], deployment: Deployment,
                  max_output_tokens: int, tools: list[dict] | None = None) -> ContextCheck:
    """`tools`: the Chat Completions tool definitions an agent sends with every call (they count as prompt)."""
    prompt = estimate_prompt_tokens([SystemMessage(system_prompt), *messages], deployment.model, deployment.image_rule)
    prompt += tool_definition_tokens(tools, deployment.model)
    return ContextCheck(prompt, max_output_tokens, deployment.context_window)


def from_azure_error(message: str, deployment: Deployment, max_output_tokens: int) -> ContextCheck | None:
    """The same check rebuilt from Azure's context_length_exceeded text (our estimate can be off)."""
    requested = re.search(r"requested (\d+) tokens \((\d+) in the messages", message or "")
    if requested:
        return ContextCheck(int(requested.group(2)), int(requested.group(1)) - int(requested.group(2)),
                            deployment.context_window)
    messages_only = re.search(r"messages resulted in (\d+) tokens", message or "")
    if messages_only:
        return ContextCheck(int(messages_only.group(1)), max_output_tokens, deployment.context_window)
    return None
