"""current_time: the date and time now in an IANA time zone (the person's own by default)."""
from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, Field

from chains.tools.spec import ToolContext, ToolFailed, ToolSpec


class CurrentTimeArgs(BaseModel):
    timezone: str | None = Field(None, description="an IANA time zone such as Europe/Paris; empty: the person's own")


def run(context: ToolContext, args: CurrentTimeArgs) -> str:
    name = (args.timezone or context.timezone or "UTC").strip()
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = sorted(z for z in available_timezones() if name.lower().split("/")[-1] in z.lower())[:5]
        hint = f" Did you mean {', '.join(close)}?" if close else " Use a name such as Europe/London or America/New_York."
        raise ToolFailed("bad_input", f"'{name}' is not a time zone name.{hint}") from None
    now = context.now().astimezone(zone)
    return f"{now:%A %d %B %Y, %H:%M} in {name} (UTC{now:%z})"


CURRENT_TIME = ToolSpec(name="current_time", description="The current date and time in a time zone.",
                        args=CurrentTimeArgs, run=run)
