"""Summary-buffer memory on LangChain's SummarizationMiddleware: exact trigger boundary, a summary that rolls
forward, bounded prompts, and no image data in what gets summarised."""
from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

from memory.summary import SummaryBufferMemory, dumps, is_summary, loads, summary_text, verbatim_ids


class RecordingModel(GenericFakeChatModel):
    """Answers "summary N" and keeps every prompt it was given."""

    prompts: list = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.prompts.append(messages)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def summarizer() -> RecordingModel:
    model = RecordingModel(messages=iter([AIMessage(content=f"summary {i}") for i in range(1000)]))
    model.prompts = []
    return model


def history(count: int) -> list:
    return [(HumanMessage if i % 2 == 0 else AIMessage)(f"message {i}", id=f"m{i}") for i in range(count)]


@pytest.mark.parametrize("remembered, summarised", [(5, False), (6, True), (7, True)])
def test_trigger_is_exact_at_seven_messages(remembered, summarised):
    """5 + the new one = 6 messages: no summary; 6 + 1 = 7 and 7 + 1 = 8: summarised, keeping the last 3."""
    model = summarizer()
    sent = SummaryBufferMemory(7, 3).prepare(history(remembered), HumanMessage("new", id="new"), model)
    assert bool(model.prompts) is summarised
    if summarised:
        assert is_summary(sent[0]) and summary_text(sent) == "summary 0"
        assert [m.id for m in sent[1:]] == [f"m{remembered - 2}", f"m{remembered - 1}", "new"]
    else:
        assert len(sent) == remembered + 1 and not any(is_summary(m) for m in sent)


def test_summary_rolls_forward_over_thirty_turns_and_the_prompt_stays_bounded():
    memory, model, remembered = SummaryBufferMemory(7, 3), summarizer(), []
    summaries = []
    for turn in range(30):
        sent = memory.prepare(remembered, HumanMessage(f"question {turn}", id=f"q{turn}"), model)
        assert len(sent) <= 7
        remembered = [*sent, AIMessage(f"answer {turn}", id=f"a{turn}")]
        summaries.append(summary_text(sent))
    assert summaries[-1] == f"summary {len(model.prompts) - 1}" and len(model.prompts) >= 12
    # Each later summary was written from the previous summary plus the messages folded in.
    assert "summary 0" in model.prompts[1][0].text
    assert verbatim_ids(sent) == {"q28", "a28", "q29"}


def test_images_are_never_summarised_as_base64():
    image = "data:image/png;base64," + "A" * 5000
    remembered = [HumanMessage([{"type": "text", "text": "look at this"},
                                {"type": "image_url", "image_url": {"url": image, "detail": "low"}}], id="img"),
                  *history(6)]
    model = summarizer()
    SummaryBufferMemory(7, 3).prepare(remembered, HumanMessage("new"), model)
    prompt = "".join(m.text for m in model.prompts[0])
    assert "look at this" in prompt and "AAAAAAAAAA" not in prompt and "base64" not in prompt


def test_keep_must_be_below_trigger():
    with pytest.raises(ValueError):
        SummaryBufferMemory(7, 7)


def test_memory_state_round_trips_through_json():
    sent = SummaryBufferMemory(7, 3).prepare(history(6), HumanMessage("new", id="new"), summarizer())
    again = loads(dumps(sent))
    assert [m.id for m in again] == [m.id for m in sent] and summary_text(again) == summary_text(sent)
