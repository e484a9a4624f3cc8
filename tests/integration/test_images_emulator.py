"""Prepared images through the model factory to the Azure OpenAI emulator (real TLS, a real Entra token): the request
carries the expected `image_url` blocks with their detail, each image the size the deployment's model keeps (tiles for
gpt-4o and gpt-4o-mini, patches for gpt-5-mini), the emulator's prompt count (the model family's rule, implemented
separately in localdev/prompt_tokens.py) equals our estimate, and a text-only deployment refuses images like Azure."""
from __future__ import annotations

import base64
import io

import openai
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from PIL import Image

from auth.credentials import app_token_provider
from chains.images import prepare_image
from chains.model_factory import build_chat_model
from chains.multimodal import ImagesNotAccepted, check_deployment_accepts, estimate_prompt, human_message


@pytest.fixture(autouse=True)
def unpaced_answers(emulators, monkeypatch):
    """Answers as fast as the scripted engine can give them: these tests are about requests, not pacing."""
    monkeypatch.setattr(emulators.aoai.engine, "time_to_first_token", 0.0)
    monkeypatch.setattr(emulators.aoai.engine, "tokens_per_second", None)


def png(size: tuple[int, int], mode: str = "RGB", colour="navy") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def model_for(settings, name: str):
    return build_chat_model(settings, settings.catalog.get(name), app_token_provider(settings.entra),
                            max_output_tokens=50)


def sent_image(block: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(block["image_url"]["url"].split(",", 1)[1])))


TILES = {"details": ["high", "low", "low", "high"], "sizes": [(1024, 768), (512, 384), (300, 200), (900, 700)]}
CASES = {
    "gpt-4o": {**TILES, "tokens": [85 + 170 * 4, 85, 85, 85 + 170 * 4]},
    "gpt-4o-mini": {**TILES, "tokens": [2833 + 5667 * 4, 2833, 2833, 2833 + 5667 * 4]},
    # patches of 32 px × 1.2, at most 1536 of them, no low of its own: auto is high, nothing cut to a 768-px side
    "gpt-5-mini": {"details": ["high", "low", "high", "high"], "sizes": [(1408, 1056), (1408, 1056), (300, 200),
                                                                         (900, 700)],
                   "tokens": [1743, 1743, 84, 766]},
}


@pytest.mark.parametrize("deployment", list(CASES))
def test_the_request_carries_the_image_blocks_with_their_detail_and_the_count_equals_our_estimate(
        settings, emulators, deployment):
    chosen, case = settings.catalog.get(deployment), CASES[deployment]
    images = [prepare_image("chart.png", png((1600, 1200)), "high", rule=chosen.image_rule),
              prepare_image("photo.png", png((4000, 3000)), "low", rule=chosen.image_rule),
              prepare_image("icon.png", png((300, 200)), "auto", rule=chosen.image_rule),
              prepare_image("logo.png", png((900, 700), "RGBA", (0, 0, 0, 0)), "auto", rule=chosen.image_rule)]
    assert [i.tokens for i in images] == case["tokens"]
    messages = [SystemMessage("You are helpful."), human_message("What is in these pictures?", images)]

    answer = model_for(settings, deployment).invoke(messages)

    request = emulators.aoai.requests[-1]
    assert request["deployment"] == deployment
    content = request["body"]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is in these pictures?"}
    blocks = content[1:]
    assert [b["type"] for b in blocks] == ["image_url"] * 4
    assert [b["image_url"]["detail"] for b in blocks] == case["details"]
    assert [b["image_url"]["url"].split(";")[0] for b in blocks] == ["data:image/jpeg"] * 3 + ["data:image/png"]
    assert [sent_image(b).size for b in blocks] == case["sizes"]
    assert [b["image_url"]["url"] for b in blocks] == [i.data_url() for i in images]
    estimate = estimate_prompt(messages, chosen)
    assert estimate.image_tokens == sum(case["tokens"])
    assert request["prompt_tokens"] == estimate.tokens == answer.usage_metadata["input_tokens"]
    if not chosen.reasoning:  # a reasoning model may spend a short answer limit on reasoning
        assert "I received 4 images" in answer.text


@pytest.mark.parametrize("deployment, tokens", [("gpt-5-mini", 922), ("gpt-4o", 765)])
def test_usage_prompt_tokens_over_https_equal_the_estimate(settings, emulators, deployment, tokens):
    """One 1024×768 photo straight through the OpenAI client, as Azure's own SDK users would see it: gpt-5-mini keeps
    all its pixels (24×32 patches × 1.2), gpt-4o its 2×2 tiles. A reasoning deployment gets max_completion_tokens and
    no temperature."""
    chosen = settings.catalog.get(deployment)
    image = prepare_image("photo.png", png((1024, 768)), "high", rule=chosen.image_rule)
    assert (image.width, image.height, image.tokens) == (1024, 768, tokens)
    message = human_message("Describe it.", [image])
    client = openai.AzureOpenAI(azure_endpoint=settings.azure_openai.endpoint,
                                api_version=settings.azure_openai.api_version,
                                azure_ad_token_provider=app_token_provider(settings.entra))  # trusts the local CA
    limit = {"max_completion_tokens": 200} if chosen.reasoning else {"max_tokens": 200, "temperature": 0}
    with client:
        answer = client.chat.completions.create(model=deployment, messages=[{"role": "user",
                                                                             "content": message.content}], **limit)
    assert settings.azure_openai.endpoint.startswith("https://")
    estimate = estimate_prompt([message], chosen)
    assert estimate.image_tokens == tokens
    assert answer.usage.prompt_tokens == estimate.tokens == emulators.aoai.requests[-1]["prompt_tokens"]


def test_a_conversation_with_earlier_images_is_counted_alike(settings, emulators):
    first = human_message("Remember this.", [prepare_image("a.png", png((2500, 1400), colour="red"), "high")])
    messages = [SystemMessage("Be brief."), first, model_for(settings, "gpt-4o").invoke([first]),
                HumanMessage("What colour was it?")]
    model_for(settings, "gpt-4o").invoke(messages)
    request = emulators.aoai.requests[-1]
    assert request["body"]["messages"][1]["content"][1]["image_url"]["detail"] == "high"
    assert request["prompt_tokens"] == estimate_prompt(messages, settings.catalog.get("gpt-4o")).tokens


def test_a_text_only_deployment_is_refused_before_sending_and_azure_would_refuse_it_too(settings, emulators):
    text_only = settings.catalog.get("gpt-35-turbo")
    image = prepare_image("a.png", png((64, 64)), "low")
    before = len(emulators.aoai.requests)
    with pytest.raises(ImagesNotAccepted, match="GPT-3.5 Turbo .* does not accept images"):
        check_deployment_accepts(text_only, [image], settings.catalog.deployments)
    assert len(emulators.aoai.requests) == before

    # Sent anyway, the service answers 400: the check above is what keeps the person's draft from that error.
    with pytest.raises(openai.BadRequestError, match="does not support image input"):
        model_for(settings, "gpt-35-turbo").invoke([human_message("what is this?", [image])])
    # Text alone still works on it, counted with its own encoding.
    messages = [HumanMessage("Ünïcödé 東京 🙂")]
    model_for(settings, "gpt-35-turbo").invoke(messages)
    assert emulators.aoai.requests[-1]["prompt_tokens"] == estimate_prompt(messages, text_only).tokens
