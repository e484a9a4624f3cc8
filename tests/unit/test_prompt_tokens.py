"""Prompt token counting matches Azure's recipe (and LangChain's estimate) for text and images."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from localdev import prompt_tokens
from localdev.prompt_tokens import (
    UnreadableImage,
    count_prompt_tokens,
    encoding_for_model,
    image_part_tokens,
    image_size_from_url,
    image_tokens,
    scaled_size,
)

TIKTOKEN_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "tiktoken"


@pytest.fixture(autouse=True)
def offline_tiktoken(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))


def png_data_url(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(("model", "encoding"), [
    ("gpt-4o", "o200k_base"), ("gpt-4o-mini", "o200k_base"), ("gpt-4o-2024-11-20", "o200k_base"),
    ("gpt-35-turbo", "cl100k_base"), ("gpt-4", "cl100k_base"), ("some-future-model", "cl100k_base"),
])
def test_encoding_is_chosen_by_model(model, encoding):
    assert encoding_for_model(model).name == encoding


def test_text_messages_count_three_per_message_plus_fields_plus_name_plus_priming():
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is Entra ID?", "name": "ada"},
    ]
    enc = encoding_for_model("gpt-4o")
    by_hand = (3 + len(enc.encode("system")) + len(enc.encode("You are a helpful assistant."))
               + 3 + len(enc.encode("user")) + len(enc.encode("What is Entra ID?")) + len(enc.encode("ada")) + 1
               + 3)
    assert count_prompt_tokens(messages, "gpt-4o") == by_hand == 25


def test_text_parts_count_like_plain_content_and_cl100k_differs_where_it_should():
    plain = [{"role": "user", "content": "Hello there, how are you?"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hello there, how are you?"}]}]
    assert count_prompt_tokens(plain, "gpt-4o") == count_prompt_tokens(parts, "gpt-4o") == 3 + 1 + 7 + 3
    emoji = [{"role": "user", "content": "日本語のテキスト 🙂"}]
    assert count_prompt_tokens(emoji, "gpt-35-turbo") != count_prompt_tokens(emoji, "gpt-4o")


def test_special_token_text_is_counted_as_text_not_rejected():
    assert count_prompt_tokens([{"role": "user", "content": "<|endoftext|>"}], "gpt-4o") > 7


@pytest.mark.parametrize(("size", "detail", "expected"), [
    ((1024, 768), "high", 765),   # 2x2 tiles: 85 + 4*170
    ((1024, 768), "low", 85),
    ((1024, 768), "auto", 765),
    ((512, 512), "high", 255),    # one tile
    ((513, 512), "high", 425),    # a pixel over makes two tiles
    ((4096, 2048), "high", 1105),  # fit 2048x1024, shortest side 768 -> 1536x768: 3x2 tiles
    ((2048, 4096), "high", 1105),
    ((100, 5000), "high", 765),   # fit 40x2048 (short side already small): 1x4 tiles
    ((2000, 2000), "high", 765),  # 768x768: 2x2 tiles
])
def test_image_tile_formula(size, detail, expected):
    assert image_tokens(*size, detail=detail) == expected


def test_scaled_size_fits_2048_then_shortest_side_768():
    assert scaled_size(4096, 2048) == (1536, 768)
    assert scaled_size(800, 600) == (800, 600)
    assert scaled_size(3000, 1000) == (2048, 682)


def test_data_url_images_are_measured_with_pillow_and_counted():
    url = png_data_url(1024, 768)
    assert image_size_from_url(url) == (1024, 768)
    assert image_part_tokens({"type": "image_url", "image_url": {"url": url}}) == 765
    assert image_part_tokens({"type": "image_url", "image_url": {"url": url, "detail": "low"}}) == 85
    text_only = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]
    with_image = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                               {"type": "image_url", "image_url": {"url": url}}]}]
    assert count_prompt_tokens(with_image, "gpt-4o") == count_prompt_tokens(text_only, "gpt-4o") + 765


def test_remote_image_urls_are_not_fetched_and_count_as_low_detail(monkeypatch):
    assert image_size_from_url("https://example.com/cat.png") is None
    assert image_part_tokens({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}) == 85


@pytest.mark.parametrize("url", ["data:image/png;base64,not-base64!", "data:image/png;base64,aGVsbG8=",
                                 "data:text/plain;base64,aGVsbG8="])
def test_undecodable_images_are_reported(url):
    with pytest.raises(UnreadableImage):
        image_part_tokens({"type": "image_url", "image_url": {"url": url}})


def test_tool_messages_count_like_langchain():
    messages = [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    enc = encoding_for_model("gpt-4o")
    expected = (3 + len(enc.encode("assistant")) + len(enc.encode("{\"q\": \"x\"}")) + len(enc.encode("lookup"))
                + 3 + len(enc.encode("tool")) + 3 + len(enc.encode("42")) + 3)
    assert count_prompt_tokens(messages, "gpt-4o") == expected


def test_counts_agree_with_langchain_estimate():
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_openai import AzureChatOpenAI

    url = png_data_url(1024, 768)
    messages = [SystemMessage("Be brief."), HumanMessage("Hi, I am Ada."), AIMessage("Hello Ada!"),
                HumanMessage([{"type": "text", "text": "Describe this."}, {"type": "image_url", "image_url": {"url": url}}])]
    wire = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi, I am Ada."},
            {"role": "assistant", "content": "Hello Ada!"},
            {"role": "user", "content": [{"type": "text", "text": "Describe this."},
                                         {"type": "image_url", "image_url": {"url": url}}]}]
    for model in ("gpt-4o", "gpt-35-turbo"):
        # LangChain only knows OpenAI's spelling of gpt-35-turbo; the app passes tiktoken_model_name for it.
        tiktoken_name = {"gpt-35-turbo": "gpt-3.5-turbo"}.get(model)
        llm = AzureChatOpenAI(azure_endpoint="https://127.0.0.1:9", azure_deployment=model, api_version="2024-10-21",
                              api_key="unused", model=model, tiktoken_model_name=tiktoken_name)
        assert count_prompt_tokens(wire, model) == llm.get_num_tokens_from_messages(messages)


def test_module_constants_are_azures():
    assert (prompt_tokens.LOW_DETAIL_TOKENS, prompt_tokens.TILE_TOKENS, prompt_tokens.TILE_SIZE) == (85, 170, 512)
