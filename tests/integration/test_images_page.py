"""Images through the page and the Azure OpenAI emulator: the request carries the prepared image with its detail,
the estimate equals the emulator's prompt count, images are stored as files (never base64 in the database) and shown
through links only the person's own session opens (web/files.py), and a bad file is named with its reason while the
rest of the message goes."""
from __future__ import annotations

import io
import sqlite3

import pytest
from PIL import Image

from tests.integration.apptest import open_page
from tests.integration.test_file_routes import file_client


def png(size=(1600, 1200), color="navy") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("deployment", "size", "tokens"), [
    ("gpt-4o", (1024, 768), 765),       # tile rule: 1600×1200 → shortest side 768; 85 + 4 × 170
    ("gpt-5-mini", (1408, 1056), 1743),  # patch rule: 1900 patches > 1536 → shrunk to 44 × 33 patches; ceil(1452 × 1.2)
])
def test_an_image_reaches_the_model_prepared_with_its_detail_and_exact_cost(settings, signed_in, emulators, deployment,
                                                                            size, tokens):
    at = open_page()
    at.sidebar.selectbox(key="deployment").set_value(deployment).run()
    at.sidebar.radio(key="image_detail").set_value("high").run()
    at.chat_input(key="draft").set_value("What is in this picture?").upload("chart.png", png(), "image/png").run()
    assert not at.exception, at.exception
    request = emulators.aoai.requests[-1]
    content = request["body"]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is in this picture?"}
    image = content[1]["image_url"]
    assert image["detail"] == "high" and image["url"].startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(__import__("base64").b64decode(image["url"].split(",", 1)[1])))
    assert decoded.size == size  # what the model itself would make of 1600×1200, nothing more, nothing less
    attachment = at.session_state["conversation"].turns[0].attachments[0]
    assert attachment["tokens"] == tokens == request["image_tokens"]  # the estimate is what the emulator billed
    # Stored as a file, referenced from the database; no image data in the database.
    files = list((settings.app.data_dir / "images").glob("*.jpg"))
    assert len(files) == 1
    with sqlite3.connect(settings.app.data_dir / "conversations.db") as db:
        stored = " ".join(str(value) for row in db.execute("SELECT memory FROM conversations UNION ALL "
                                                           "SELECT attachments FROM messages") for value in row)
    assert "base64" not in stored and f"stored:{files[0].name}" in stored
    # The thumbnail: a link to the route that checks the session cookie, never Streamlit's media manager.
    (thumbnail,) = at.chat_message[0].image
    (url,) = thumbnail.value
    assert url.startswith(f"{settings.app.public_url}/files/") and files[0].stem not in url
    assert thumbnail.captions == [f"chart.png · {size[0]}×{size[1]} · high · {tokens} tokens"]
    shown = file_client(settings, signed_in.session_id).get(url)
    assert shown.status_code == 200 and shown.content == files[0].read_bytes()
    assert shown.headers["content-type"] == "image/jpeg" and shown.headers["cache-control"] == "private, no-store"
    assert file_client(settings).get(url).status_code == 401


@pytest.mark.parametrize("deployment", ["gpt-4o", "gpt-5-mini", "o4-mini", "gpt-5.4-nano"])
def test_estimate_matches_the_emulator_count_with_images(settings, signed_in, emulators, deployment):
    from langchain_core.messages import SystemMessage

    from chains.assistant import DEFAULT_SYSTEM_PROMPT
    from chains.images import prepare_image
    from chains.multimodal import estimate_prompt_tokens, human_message

    chosen = settings.catalog.get(deployment)
    at = open_page()
    at.sidebar.selectbox(key="deployment").set_value(deployment).run()
    at.sidebar.radio(key="image_detail").set_value("low").run()
    at.chat_input(key="draft").set_value("describe").upload("a.png", png((900, 600)), "image/png").run()
    prepared = prepare_image("a.png", png((900, 600)), "low", rule=chosen.image_rule)
    estimate = estimate_prompt_tokens([SystemMessage(DEFAULT_SYSTEM_PROMPT), human_message("describe", [prepared])],
                                      chosen.model, chosen.image_rule)
    assert emulators.aoai.requests[-1]["prompt_tokens"] == estimate
    assert emulators.aoai.requests[-1]["image_tokens"] == prepared.tokens


def test_a_bad_file_is_named_and_the_rest_of_the_message_still_goes(settings, signed_in, emulators):
    at = open_page()
    before = len(emulators.aoai.requests)
    at.chat_input(key="draft").set_value("compare these").upload("good.png", png((300, 300)), "image/png") \
        .upload("broken.png", b"not really a png", "image/png").run()
    assert not at.exception
    notice = at.chat_message[0].error[0].value
    assert "broken.png" in notice and "not an image" in notice
    assert len(emulators.aoai.requests) == before + 1
    blocks = emulators.aoai.requests[-1]["body"]["messages"][-1]["content"]
    assert [b["type"] for b in blocks] == ["text", "image_url"]


def test_resumed_conversation_sends_its_stored_images_again(settings, signed_in, emulators):
    at = open_page()
    at.chat_input(key="draft").set_value("remember this image").upload("p.png", png((300, 300), "red"), "image/png").run()
    cid = at.session_state["conversation"].id
    fresh = open_page()
    fresh.sidebar.button(key=f"open-{cid}").click().run()
    (url,) = fresh.chat_message[0].image[0].value  # the stored image, shown again through a link of this session
    assert file_client(settings, signed_in.session_id).get(url).status_code == 200
    fresh.chat_input(key="draft").set_value("what colour was it?").run()
    sent = emulators.aoai.requests[-1]["body"]["messages"]
    assert any(isinstance(m["content"], list) and m["content"][1]["image_url"]["url"].startswith("data:image/jpeg")
               for m in sent)
