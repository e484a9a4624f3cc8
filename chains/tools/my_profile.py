"""my_profile: the signed-in person's own Microsoft Graph profile (/me), with their delegated token."""
from __future__ import annotations

from pydantic import BaseModel

from chains.tools.spec import ToolContext, ToolSpec, graph_of

FIELDS = ("displayName", "jobTitle", "mail", "userPrincipalName", "officeLocation", "preferredLanguage")


class NoArgs(BaseModel):
    pass


def run(context: ToolContext, args: NoArgs) -> str:
    me = graph_of(context).get("/me", {"$select": ",".join(FIELDS)})
    return "; ".join(f"{name}: {me[name]}" for name in FIELDS if me.get(name)) or "The profile is empty."


MY_PROFILE = ToolSpec(name="my_profile", description="The signed-in person's own profile: name, job title, e-mail, "
                      "office.", args=NoArgs, run=run, acts_as_person=True)
