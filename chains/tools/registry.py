"""The tools an agent chain may offer the model. Adding one: write `chains/tools/<name>.py` exposing a `ToolSpec`
(see chains/tools/spec.py), import it here and add it to `TOOLS`.

A tool is offered only where the deployment's catalog entry allows it (`tools`), the person holds one of its roles,
and, for tools that act with the person's own identity, a person is signed in. A tool result is data for the model:
it never widens what the model may call (the offered set is fixed before the turn starts)."""
from __future__ import annotations

from dataclasses import replace

from langchain_core.tools import BaseTool, StructuredTool

from chains.tools.calculator import CALCULATOR
from chains.tools.current_time import CURRENT_TIME
from chains.tools.find_colleague import FIND_COLLEAGUE
from chains.tools.graph import GraphError
from chains.tools.my_calendar import MY_CALENDAR
from chains.tools.my_manager import MY_MANAGER
from chains.tools.my_profile import MY_PROFILE
from chains.tools.search_documents import SEARCH_DOCUMENTS
from chains.tools.spec import ToolContext, ToolFailed, ToolSpec
from config.catalog import Deployment

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in (
    CALCULATOR, CURRENT_TIME, MY_PROFILE, MY_MANAGER, MY_CALENDAR, FIND_COLLEAGUE, SEARCH_DOCUMENTS)}


def available(deployment: Deployment, roles: frozenset[str] | set[str], person: bool,
              documents: bool = False) -> list[ToolSpec]:
    """The tools this deployment and this person may use; `person`: someone is signed in (Graph needs them);
    `documents`: the conversation has indexed documents to search."""
    allowed = deployment.tools
    return [spec for spec in TOOLS.values()
            if (allowed is None or spec.name in allowed)
            and (not spec.roles or spec.roles & set(roles))
            and (person or not spec.acts_as_person)
            and (documents or not spec.needs_documents)]


def langchain_tools(specs: list[ToolSpec], context: ToolContext) -> list[BaseTool]:
    return [_tool(spec, context) for spec in specs]


def _tool(spec: ToolSpec, context: ToolContext) -> BaseTool:
    def call(**arguments) -> tuple[str, dict]:
        # Each call gets its own Graph client: parallel tool calls must not share the last request id.
        own = replace(context, graph=context.graph.copy() if context.graph else None)
        try:
            text = spec.run(own, spec.args(**arguments))
            return text, {"outcome": "ok", "request_id": own.graph.last_request_id if own.graph else None}
        except (ToolFailed, GraphError) as failure:  # said to the model, which tells the person; never a traceback
            return f"Error: {failure}", {"outcome": failure.kind, "request_id": failure.request_id}

    return StructuredTool.from_function(func=call, name=spec.name, description=spec.description,
                                        args_schema=spec.args, response_format="content_and_artifact")
