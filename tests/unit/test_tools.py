"""Tools without a network: the calculator never evaluates code, time zones are explained, and a tool is offered only
where the deployment, the person's roles and their sign-in allow it."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from chains.tools.calculator import evaluate
from chains.tools.registry import TOOLS, available, langchain_tools
from chains.tools.spec import ToolContext, ToolFailed
from config.catalog import load_catalog
from localdev import LOCAL_CATALOG_FILE

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("expression, value", [("(1250 * 1.2) / 3", "500"), ("2 ** 10", "1024"), ("-7 // 2", "-4"),
                                               ("0.1 + 0.2", "0.3"), ("17 % 5", "2"), ("3 × 4 ÷ 2", "6")])
def test_calculator_is_exact(expression, value):
    assert format(evaluate(expression).normalize(), "f") == value


@pytest.mark.parametrize("expression", ["__import__('os').system('id')", "open('/etc/passwd')", "x + 1", "[1, 2]",
                                        "(1).__class__", "2 ** 100000", "1 / 0", "", "1 +", "True + 1", "'a' * 3"])
def test_calculator_refuses_anything_but_arithmetic(expression):
    with pytest.raises(ToolFailed):
        evaluate(expression)


def _call(name: str, context: ToolContext, **args):
    (tool,) = [t for t in langchain_tools([TOOLS[name]], context)]
    return tool.invoke({"type": "tool_call", "id": "call_1", "name": name, "args": args})


def test_current_time_in_a_zone_and_bad_names_explained():
    context = ToolContext(timezone="Europe/Paris", now=lambda: NOON)
    assert _call("current_time", context).content == "Tuesday 01 December 2026, 13:00 in Europe/Paris (UTC+0100)"
    assert "in America/New_York" in _call("current_time", context, timezone="America/New_York").content
    failed = _call("current_time", context, timezone="Paris")
    assert failed.content.startswith("Error: 'Paris' is not a time zone name. Did you mean Europe/Paris")
    assert failed.artifact == {"outcome": "bad_input", "request_id": None}


def test_graph_tools_need_a_signed_in_person_and_say_so():
    failed = _call("my_profile", ToolContext())
    assert "needs a signed-in person" in failed.content and failed.artifact["outcome"] == "sign_in_required"


def test_only_allowed_tools_are_offered():
    gpt4o = load_catalog(LOCAL_CATALOG_FILE).get("gpt-4o")
    everyone = {spec.name for spec in available(gpt4o, set(), person=True, documents=True)}
    assert everyone == set(TOOLS)
    # search_documents only where the conversation has indexed documents
    assert {spec.name for spec in available(gpt4o, set(), person=True)} == set(TOOLS) - {"search_documents"}
    assert {spec.name for spec in available(gpt4o, set(), person=False)} == {"calculator", "current_time"}
    limited = gpt4o.model_copy(update={"tools": ("calculator", "my_calendar")})
    assert {spec.name for spec in available(limited, set(), person=True)} == {"calculator", "my_calendar"}
    assert available(gpt4o.model_copy(update={"tools": ()}), set(), person=True) == []
    guarded = replace(TOOLS["find_colleague"], roles=frozenset({"Chat.Directory"}))
    TOOLS["find_colleague"] = guarded
    try:
        assert "find_colleague" not in {s.name for s in available(gpt4o, {"Chat.User"}, person=True)}
        assert "find_colleague" in {s.name for s in available(gpt4o, {"Chat.Directory"}, person=True)}
    finally:
        TOOLS["find_colleague"] = replace(guarded, roles=frozenset())
