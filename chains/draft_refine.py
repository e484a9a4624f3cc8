"""Draft, then refine: a first answer is written (not shown), then reviewed and improved; only the refined answer
streams to the person. Two model calls per turn, both audited and costed."""
from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from chains.assistant import DEFAULT_SYSTEM_PROMPT, build_assistant
from chains.spec import ChainSpec

REFINE_PROMPT = (
    "You review a draft answer to the last message of the conversation below. Check it for mistakes, gaps and "
    "unclear wording, then write the improved final answer only (do not mention the draft).\n\nDraft answer:\n{draft}"
)


def build_draft_refine(model: BaseChatModel) -> Runnable:
    # Tagged "draft": the audit log names the call's purpose, and nothing of it reaches the page.
    draft_chain = build_assistant(model, DEFAULT_SYSTEM_PROMPT).with_config(tags=["draft"], run_name="draft")
    refine_prompt = ChatPromptTemplate.from_messages([("system", REFINE_PROMPT), MessagesPlaceholder("messages")])

    def refine(inputs: dict, config: RunnableConfig) -> Runnable:
        draft = draft_chain.invoke(inputs, config)
        # Returning a runnable makes LangChain stream it with the same input: the refined answer streams.
        return (refine_prompt.partial(draft=str(draft.text)) | model).with_config(run_name="refine")

    return RunnableLambda(refine, name="draft_refine")


DRAFT_REFINE = ChainSpec(
    name="draft_refine", version="1", title="Draft, then refine",
    description="Writes a draft, reviews it and streams the improved answer (two model calls).",
    system_prompt=DEFAULT_SYSTEM_PROMPT, build=build_draft_refine, model_calls_per_turn=2,
)
