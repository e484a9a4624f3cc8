"""my_manager: the signed-in person's manager (/me/manager), with their delegated token."""
from __future__ import annotations

from chains.tools.my_profile import NoArgs
from chains.tools.spec import ToolContext, ToolSpec, graph_of


def run(context: ToolContext, args: NoArgs) -> str:
    manager = graph_of(context).get("/me/manager", {"$select": "displayName,jobTitle,mail"})
    parts = [manager.get("displayName"), manager.get("jobTitle"), manager.get("mail")]
    return "Manager: " + ", ".join(p for p in parts if p)


MY_MANAGER = ToolSpec(name="my_manager", description="Who the signed-in person's manager is.", args=NoArgs, run=run,
                      acts_as_person=True)
