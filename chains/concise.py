"""Short, direct answers at a low temperature: for people who want the fact, not the essay."""
from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

from chains.assistant import build_assistant
from chains.spec import ChainSpec

SYSTEM_PROMPT = (
    "Answer in at most three sentences or a short list. No preamble, no repetition of the question. "
    "If you are unsure, say so in one sentence."
)
TEMPERATURE = 0.2


def build_concise(model: BaseChatModel) -> Runnable:
    return build_assistant(model.bind(temperature=TEMPERATURE), SYSTEM_PROMPT).with_config(run_name="concise")


CONCISE = ChainSpec(
    name="concise", version="1", title="Concise answerer",
    description="At most three sentences, temperature 0.2.",
    system_prompt=SYSTEM_PROMPT, build=build_concise, temperature=TEMPERATURE,
)
