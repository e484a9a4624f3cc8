"""The emulator's scripted embeddings (feature-hashing bags of words) and its scripted answers from document sources."""
from __future__ import annotations

import array
import base64
import math

import pytest

from config.catalog import load_catalog
from localdev import LOCAL_CATALOG_FILE
from localdev.embeddings import (
    content_words,
    fit_dimensions,
    hashed_vector,
    hashed_vectors,
    native_dimensions,
    to_base64,
)
from localdev.engines import (
    NO_ANSWER,
    ChatRequest,
    ScriptedEngine,
    Source,
    parse_sources,
    scripted_reply,
    sentences,
    sources_in,
    sources_reply,
)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


# ---- hashing vectors ----
def test_vectors_are_deterministic_unit_length_and_as_long_as_asked():
    first = hashed_vector("Quarterly revenue grew by twelve percent", 512)
    assert first == hashed_vector("Quarterly revenue grew by twelve percent", 512)
    assert len(first) == 512 and math.isclose(sum(v * v for v in first), 1.0)
    assert [len(v) for v in hashed_vectors(["a report", "another report"], 1536)] == [1536, 1536]
    assert len(hashed_vector("revenue", 7)) == 7


def test_texts_sharing_words_are_close_and_unrelated_ones_far():
    report = hashed_vector("The quarterly revenue report for the northern region", 512)
    similar = hashed_vector("Revenue reports of the northern region, quarterly", 512)
    unrelated = hashed_vector("Teachers marked fewer essays during the pilot", 512)
    assert cosine(report, similar) > 0.8
    assert abs(cosine(report, unrelated)) < 0.2
    assert cosine(report, similar) > cosine(report, unrelated) + 0.6


def test_case_punctuation_stop_words_and_plurals_do_not_matter():
    assert hashed_vector("The REPORTS, of the region!", 256) == hashed_vector("report region", 256)
    assert content_words("The reports of the classes, policies and status") == ["report", "class", "policy", "status"]


def test_a_text_without_content_words_gets_a_fixed_unit_vector():
    empty, stop_words = hashed_vector("", 64), hashed_vector("the of and", 64)
    assert empty == stop_words and empty[0] == 1.0 and sum(v * v for v in empty) == 1.0


def test_fitting_a_model_vector_pads_with_zeros_or_truncates_to_unit_length():
    a, b = [3.0, 4.0, 0.0], [4.0, 3.0, 0.0]
    padded_a, padded_b = fit_dimensions(a, 8), fit_dimensions(b, 8)
    assert len(padded_a) == 8 and padded_a[3:] == [0.0] * 5
    assert math.isclose(cosine(padded_a, padded_b), cosine(a, b))
    assert fit_dimensions(a, 1) == [1.0]


def test_base64_is_little_endian_float32():
    vector = array.array("f", [0.5, -0.25, 1.0])
    decoded = array.array("f")
    decoded.frombytes(base64.b64decode(to_base64(vector)))
    assert decoded.tolist() == [0.5, -0.25, 1.0]
    assert base64.b64decode(to_base64(vector))[:4] == b"\x00\x00\x00\x3f"  # 0.5 little-endian


def test_native_lengths_of_the_embedding_models():
    assert native_dimensions("text-embedding-3-small", 512) == 1536
    assert native_dimensions("text-embedding-3-large", 512) == 3072
    assert native_dimensions("text-embedding-ada-002", 512) == 1536
    assert native_dimensions("some-other-model", 768) == 768


def test_the_scripted_engine_embeds_with_the_hashing_vectors():
    assert ScriptedEngine().embed(["revenue grew", "pilot"], 32) == hashed_vectors(["revenue grew", "pilot"], 32)


# ---- answers from sources ----
SOURCES_MESSAGE = """Answer from the numbered sources below. Cite each source you use as [n].

<source n="1" file="report.pdf" where="page 3">
Quarterly revenue grew by 12 percent. Costs stayed flat.
</source>
<source n="2" file="notes &amp; minutes.docx" where="section “Results”">
Results
The pilot reached 40 schools. Teachers reported "less marking." Revenue was not measured.
</source>
<source n="3" file="plan.txt" where="">
The pilot continues next year in 60 schools.
</source>"""
SOURCES = parse_sources(SOURCES_MESSAGE)


def test_sources_are_parsed_with_their_attributes_and_passages():
    assert [s.n for s in SOURCES] == [1, 2, 3]
    assert SOURCES[0] == Source(1, "report.pdf", "page 3", "Quarterly revenue grew by 12 percent. Costs stayed flat.")
    assert SOURCES[1].file == "notes & minutes.docx" and SOURCES[1].where == "section “Results”"
    assert SOURCES[1].text.startswith("Results\nThe pilot") and SOURCES[2].where == ""
    assert parse_sources("no sources here") == []


def test_sentences_keep_their_wording_and_headings_stand_alone():
    assert sentences(SOURCES[1].text) == ["Results", "The pilot reached 40 schools.", 'Teachers reported "less marking."',
                                          "Revenue was not measured."]
    assert sentences("A line wrapped\nin the middle. Next one!") == ["A line wrapped\nin the middle.", "Next one!"]


def test_the_passage_sharing_most_words_answers_with_its_best_sentence():
    assert sources_reply(SOURCES, "How many schools did the pilot reach?") == \
        "According to the documents, The pilot reached 40 schools. [2]"
    assert sources_reply(SOURCES, "What did teachers report about marking?") == \
        'According to the documents, Teachers reported "less marking." [2]'
    assert sources_reply(SOURCES, "Did quarterly costs stay flat?") == \
        "According to the documents, Costs stayed flat. [1]"


def test_ties_go_to_the_lower_number_and_no_shared_word_means_the_documents_do_not_say():
    assert sources_reply(SOURCES, "revenue?") == "According to the documents, Quarterly revenue grew by 12 percent. [1]"
    assert sources_reply(list(reversed(SOURCES)), "revenue?").endswith("[1]")
    assert sources_reply(SOURCES, "What is the weather in Paris?") == NO_ANSWER == "The attached documents do not say."
    assert sources_reply(SOURCES, "What is it?") == NO_ANSWER, "stop words are no overlap"


DEPLOYMENT = load_catalog(LOCAL_CATALOG_FILE).get("gpt-4o")


def test_the_scripted_reply_answers_from_sources_in_any_system_message():
    messages = [{"role": "system", "content": "You help staff."}, {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi"}, {"role": "system", "content": [{"type": "text", "text": SOURCES_MESSAGE}]},
                {"role": "user", "content": "How many schools did the pilot reach? [[fault:500]]"}]
    assert sources_in(messages) == SOURCES
    assert scripted_reply(ChatRequest(DEPLOYMENT, messages)) == "According to the documents, The pilot reached 40 schools. [2]"


def test_without_sources_the_scripted_reply_is_unchanged():
    messages = [{"role": "system", "content": "Answer from memory. <source> is just a word here."},
                {"role": "user", "content": "Hello"}]
    assert scripted_reply(ChatRequest(DEPLOYMENT, messages)).startswith("You said: Hello.")
    tool_turn = [{"role": "system", "content": SOURCES_MESSAGE}, {"role": "user", "content": "time?"},
                 {"role": "assistant", "content": None, "tool_calls": [
                     {"id": "call_1", "type": "function", "function": {"name": "current_time", "arguments": "{}"}}]},
                 {"role": "tool", "tool_call_id": "call_1", "content": "12:00"}]
    assert scripted_reply(ChatRequest(DEPLOYMENT, tool_turn)).startswith("Here is what the tools returned")


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_gets_no_answer_from_sources(question):
    assert sources_reply(SOURCES, question) == NO_ANSWER
