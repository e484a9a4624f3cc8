"""Multimodal message builders, the text-only refusal, and the prompt estimate (tokens and cost) before sending."""
from __future__ import annotations

import base64
import io
from decimal import Decimal

import pytest
import tiktoken
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import AzureChatOpenAI
from PIL import Image

from chains.images import image_tokens, prepare_image
from chains.multimodal import (
    ImagesNotAccepted,
    PromptEstimate,
    check_deployment_accepts,
    estimate_draft,
    estimate_prompt,
    estimate_prompt_tokens,
    human_message,
    message_image_tokens,
)
from config.catalog import load_catalog
from localdev import LOCAL_CATALOG_FILE

CATALOG = load_catalog(LOCAL_CATALOG_FILE)


def png(size: tuple[int, int], mode: str = "RGB", colour="navy") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def offline_model(model: str = "gpt-4o") -> AzureChatOpenAI:
    """Only used to see what LangChain puts on the wire and how it counts; never calls anything."""
    return AzureChatOpenAI(azure_endpoint="https://unused.invalid", api_version="2024-10-21", azure_deployment=model,
                           model=model, tiktoken_model_name=model.replace("gpt-35", "gpt-3.5"), api_key="unused")


def test_blocks_are_text_then_image_url_with_detail_and_data_url():
    images = [prepare_image("a.png", png((1600, 1200)), "high"), prepare_image("b.png", png((1600, 1200)), "low"),
              prepare_image("c.png", png((64, 64), "RGBA", (0, 0, 0, 0)), "auto")]
    message = human_message("what is this?", images, "m1")
    assert message.id == "m1" and message.content[0] == {"type": "text", "text": "what is this?"}
    assert [b["type"] for b in message.content] == ["text", "image_url", "image_url", "image_url"]
    assert [b["image_url"]["detail"] for b in message.content[1:]] == ["high", "low", "low"]
    assert [b["image_url"]["url"].split(";")[0] for b in message.content[1:]] == \
        ["data:image/jpeg", "data:image/jpeg", "data:image/png"]
    sent = base64.b64decode(message.content[1]["image_url"]["url"].split(",", 1)[1])
    assert sent == images[0].data and Image.open(io.BytesIO(sent)).size == (1024, 768)


def test_text_alone_stays_a_string_and_images_alone_have_no_empty_text_block():
    assert human_message("hello", []).content == "hello"
    only = human_message("", [prepare_image("a.png", png((10, 10)), "low")])
    assert [b["type"] for b in only.content] == ["image_url"]


def test_langchain_sends_the_blocks_to_chat_completions_unchanged():
    message = human_message("look", [prepare_image("a.png", png((900, 600)), "high")])
    payload = offline_model()._get_request_payload([SystemMessage("be brief"), message])
    assert payload["messages"][1] == {"role": "user", "content": message.content}
    assert payload["messages"][1]["content"][1]["image_url"]["detail"] == "high"


def test_text_only_deployment_refuses_images_and_names_the_ones_that_accept_them():
    image = prepare_image("a.png", png((10, 10)), "low")
    with pytest.raises(ImagesNotAccepted) as caught:
        check_deployment_accepts(CATALOG.get("gpt-35-turbo"), [image, image], CATALOG.deployments)
    message = str(caught.value)
    assert message.startswith("GPT-3.5 Turbo (text only) does not accept images, and 2 images are attached.")
    assert "GPT-4o (text and images) or GPT-4o mini (fast, text and images)" in message
    assert message.endswith("your text is kept.")
    with pytest.raises(ImagesNotAccepted, match="1 image is attached. Pick a deployment that accepts images"):
        check_deployment_accepts(CATALOG.get("gpt-35-turbo"), [image])
    check_deployment_accepts(CATALOG.get("gpt-35-turbo"), [])  # text alone is fine
    check_deployment_accepts(CATALOG.get("gpt-4o"), [image])
    check_deployment_accepts(CATALOG.get("gpt-4o-mini"), [image])


@pytest.mark.parametrize("size, detail, tokens", [((1600, 1200), "high", 85 + 170 * 4), ((1600, 1200), "low", 85),
                                                  ((4000, 1000), "high", 85 + 170 * 4 * 1), ((300, 200), "high", 255),
                                                  ((300, 200), "auto", 85), ((5000, 100), "high", 85 + 170 * 4)])
def test_image_tokens_follow_the_tile_formula(size, detail, tokens):
    prepared = prepare_image("a.png", png(size), detail)
    assert prepared.tokens == tokens
    assert message_image_tokens([human_message("x", [prepared])]) == tokens


def _text_tokens(encoding: str, *texts: str) -> int:
    return sum(len(tiktoken.get_encoding(encoding).encode(t)) for t in texts)


@pytest.mark.parametrize("model, encoding", [("gpt-4o", "o200k_base"), ("gpt-4o-mini", "o200k_base"),
                                             ("gpt-35-turbo", "cl100k_base")])
def test_text_estimate_uses_the_models_encoding(model, encoding):
    text = "Ünïcödé façade naïveté — 東京の天気は？ 🙂 supercalifragilistic"
    assert _text_tokens("o200k_base", text) != _text_tokens("cl100k_base", text)  # the test can tell them apart
    # OpenAI's recipe: 3 per message + its role + its content, then 3 to prime the reply.
    assert estimate_prompt_tokens([HumanMessage(text)], model) == 3 + 3 + _text_tokens(encoding, "user", text)


def test_estimate_adds_images_to_text_and_prices_it():
    deployment = CATALOG.get("gpt-4o")
    images = [prepare_image("a.png", png((1600, 1200)), "high"), prepare_image("b.png", png((1600, 1200)), "low")]
    estimate = estimate_draft(deployment, "what is this?", images, history=[HumanMessage("hi"), AIMessage("hello")],
                              system_prompt="You are helpful.")
    text_only = estimate_prompt_tokens([SystemMessage("You are helpful."), HumanMessage("hi"), AIMessage("hello"),
                                        HumanMessage("what is this?")], "gpt-4o")
    assert estimate == PromptEstimate(text_only + 765 + 85, 765 + 85, 2, deployment.cost(text_only + 850, 0),
                                      "GPT-4o (text and images)")
    assert estimate.cost == Decimal(estimate.tokens) * Decimal("2.50") / 1_000_000
    assert estimate.summary() == (f"≈{estimate.tokens} prompt tokens, 850 of them for 2 images, "
                                  f"≈${estimate.cost:.6f} on GPT-4o (text and images)")
    assert "of them for" not in estimate_draft(deployment, "hi").summary()


def test_our_estimate_equals_langchains_own_count():
    message = human_message("compare", [prepare_image("a.png", png((2500, 1400)), "high"),
                                        prepare_image("b.png", png((700, 300)), "auto"),
                                        prepare_image("c.png", png((900, 900)), "low")])
    messages = [SystemMessage("You are helpful."), HumanMessage("hi"), AIMessage("hello"), message]
    assert estimate_prompt(messages, CATALOG.get("gpt-4o")).tokens == \
        offline_model().get_num_tokens_from_messages(messages)  # data URLs: nothing is fetched


def test_image_tokens_are_measured_from_the_image_sent():
    prepared = prepare_image("a.png", png((3000, 3000)), "high")
    assert (prepared.width, prepared.height) == (768, 768)
    assert message_image_tokens([human_message("x", [prepared])]) == image_tokens(768, 768, "high") == 85 + 170 * 4


def test_more_images_than_the_deployment_accepts_are_refused_with_a_clear_sentence():
    image = prepare_image("a.png", png((10, 10)), "low")
    deployment = CATALOG.get("gpt-5-mini")
    assert deployment.max_images == 10
    check_deployment_accepts(deployment, [image] * 10)
    with pytest.raises(ImagesNotAccepted) as caught:
        check_deployment_accepts(deployment, [image] * 12, CATALOG.deployments)
    assert str(caught.value) == ("GPT-5 mini (reasoning, text and images) accepts at most 10 images per message, "
                                 "and 12 are attached. Remove 2 of them and send again; your text is kept.")
    one = deployment.model_copy(update={"max_images": 1})
    with pytest.raises(ImagesNotAccepted, match=r"accepts at most 1 image per message, and 2 are attached\. Remove 1 "):
        check_deployment_accepts(one, [image, image])


def test_the_estimate_prices_images_with_the_deployments_own_rule():
    mini = CATALOG.get("gpt-5-mini")
    image = prepare_image("a.png", png((1024, 768)), "high", rule=mini.image_rule)
    assert (image.width, image.height, image.tokens) == (1024, 768, 922)  # patches: no 768-px short side, ×1.2
    estimate = estimate_draft(mini, "what is this?", [image], system_prompt="You are helpful.")
    text_only = estimate_prompt_tokens([SystemMessage("You are helpful."), HumanMessage("what is this?")], "gpt-5-mini")
    assert (estimate.tokens, estimate.image_tokens, estimate.images) == (text_only + 922, 922, 1)
    assert estimate.cost == mini.cost(text_only + 922, 0)
    message = human_message("x", [image])
    assert message_image_tokens([message], mini.image_rule) == 922
    assert message_image_tokens([message]) == image_tokens(1024, 768, "high") == 765  # None: gpt-4o's tiles
    mini_4o = CATALOG.get("gpt-4o-mini")
    assert estimate_prompt([message], mini_4o).image_tokens == 2833 + 5667 * 4  # the same image on gpt-4o-mini
