"""The local engine really loads SmolLM2 with llama.cpp and streams through the Azure OpenAI emulator: usage equals
the tokenizer's counts, images get an honest answer, and a full queue gets Azure's 429 with retry-after."""
from __future__ import annotations

import base64
import io
import ssl
import threading
import time

import httpx
import openai
import pytest
from PIL import Image

from localdev.engines import ChatRequest
from localdev.llama_engine import local_engine_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(local_engine_available() is not None,
                                 reason=f"the local model is not installed here: {local_engine_available()}")]


@pytest.fixture(scope="module")
def engine():
    from localdev.llama_engine import LlamaEngine
    return LlamaEngine(max_waiting=0, retry_after_seconds=3)


@pytest.fixture
def local(emulators, engine, settings):
    # The model takes one request at a time (max_waiting=0): a previous test's stream releases its slot just after
    # its last chunk reached the client, so each test starts once the model is free again (bounded wait).
    deadline = time.monotonic() + 30
    while engine._admitted and time.monotonic() < deadline:
        time.sleep(0.05)
    previous = emulators.aoai.engine
    emulators.aoai.engine = engine
    client = openai.AzureOpenAI(azure_endpoint=settings.azure_openai.endpoint, api_version=settings.azure_openai.api_version,
                                azure_ad_token=emulators.entra.cognitive_services_token(), max_retries=0)
    yield client
    emulators.aoai.engine = previous


MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name one colour of the sky."}]


def test_streams_a_real_answer_with_the_tokenizers_counts(local, engine, settings):
    chunks = list(local.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, max_tokens=24,
                                                temperature=0, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and "You said" not in text  # not the scripted echo
    usage = chunks[-1].usage
    request = ChatRequest(deployment=settings.catalog.get("gpt-4o"), messages=MESSAGES)
    assert usage.prompt_tokens == len(engine.prompt_tokens(request))
    assert usage.completion_tokens == engine.last_completion_tokens <= 24


def test_images_get_an_honest_answer_not_a_description(local):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    answer = local.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}])
    text = answer.choices[0].message.content
    assert "cannot see" in text and "PNG 64×48" in text and "gpt-4o" in text


def test_a_full_queue_gets_429_with_retry_after(local, emulators, settings):
    started, finished = threading.Event(), threading.Event()

    def long_answer():
        for chunk in local.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, max_tokens=200,
                                                   temperature=0):
            started.set()
        finished.set()

    worker = threading.Thread(target=long_answer)
    worker.start()
    assert started.wait(60)
    busy = httpx.post(f"{settings.azure_openai.endpoint}/openai/deployments/gpt-4o/chat/completions"
                      f"?api-version={settings.azure_openai.api_version}", json={"messages": MESSAGES, "max_tokens": 5},
                      headers={"authorization": f"Bearer {emulators.entra.cognitive_services_token()}"},
                      verify=ssl.create_default_context(cafile=str(emulators.tls.ca_file)), timeout=30)
    worker.join(120)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "3"
    assert finished.is_set()
    again = local.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5, temperature=0)
    assert again.choices[0].message.content is not None
