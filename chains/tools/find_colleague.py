"""find_colleague: people in the organisation whose name matches (/users $search), with the person's token."""
from __future__ import annotations

from pydantic import BaseModel, Field

from chains.tools.spec import ToolContext, ToolFailed, ToolSpec, graph_of


class FindColleagueArgs(BaseModel):
    name: str = Field(description="part of the colleague's name, e.g. Grace")


def run(context: ToolContext, args: FindColleagueArgs) -> str:
    name = " ".join(args.name.replace('"', " ").split())[:60]
    if not name:
        raise ToolFailed("bad_input", "Give part of a name to search for.")
    people = graph_of(context).get_all(
        "/users", {"$search": f'"displayName:{name}"', "$select": "displayName,jobTitle,mail,officeLocation"},
        headers={"ConsistencyLevel": "eventual"}, limit=10)
    if not people:
        return f"Nobody named like '{name}' was found."
    return "\n".join("- " + ", ".join(p.get(k) for k in ("displayName", "jobTitle", "mail", "officeLocation") if p.get(k))
                     for p in people)


FIND_COLLEAGUE = ToolSpec(name="find_colleague", description="Find colleagues by name: job title, e-mail, office.",
                          args=FindColleagueArgs, run=run, acts_as_person=True)
