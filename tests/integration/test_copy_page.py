"""Each answer on the chat page carries a "Copy answer" control holding its markdown; questions carry none."""
from __future__ import annotations

import json

from tests.integration.apptest import open_page


def _copy_controls(block) -> list[dict]:
    """The copy components under `block`, as {key, text}."""
    found = []
    for element in block.get("bidi_component"):
        if element.proto.component_name == "copy_answer":
            found.append({"id": element.proto.id, "text": json.loads(element.proto.json)["text"]})
    return found


def test_each_answer_has_a_copy_control_with_its_markdown_and_questions_have_none(signed_in, emulators):
    at = open_page()
    for question in ["first **question**", "second question"]:
        at.chat_input(key="draft").set_value(question).run()
        assert not at.exception
    turns = at.session_state["conversation"].turns
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    for message, turn in zip(at.chat_message, turns):
        controls = _copy_controls(message)
        if turn.role == "assistant":
            assert [c["text"] for c in controls] == [turn.content] and turn.content
            assert f"copy-{turn.id}" in controls[0]["id"]
        else:
            assert controls == []
