"""my_calendar: the signed-in person's meetings in a time range (/me/calendarView), in their time zone."""
from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from chains.tools.spec import ToolContext, ToolFailed, ToolSpec, graph_of

MAX_DAYS, MAX_EVENTS = 31, 50


class CalendarArgs(BaseModel):
    start: str = Field(description="start of the range, ISO 8601 date or date-time, e.g. 2026-12-01 or 2026-12-01T09:00")
    end: str = Field(description="end of the range (exclusive), ISO 8601 date or date-time")


def _moment(text: str, label: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ToolFailed("bad_input", f"The {label} '{text}' is not an ISO 8601 date or date-time.") from None


def run(context: ToolContext, args: CalendarArgs) -> str:
    start, end = _moment(args.start, "start"), _moment(args.end, "end")
    if end <= start:
        raise ToolFailed("bad_input", "The end of the range must come after its start.")
    if (end.replace(tzinfo=None) - start.replace(tzinfo=None)) > timedelta(days=MAX_DAYS):
        raise ToolFailed("bad_input", f"Ask for at most {MAX_DAYS} days at a time.")
    events = graph_of(context).get_all(
        "/me/calendarView",
        {"startDateTime": start.isoformat(), "endDateTime": end.isoformat(), "$orderby": "start/dateTime",
         "$select": "subject,start,end,location,organizer"},
        headers={"Prefer": f'outlook.timezone="{context.timezone}"'}, limit=MAX_EVENTS)
    if not events:
        return f"No meetings between {args.start} and {args.end}."
    lines = [f"{len(events)} meeting(s), times in {context.timezone}:"]
    for event in events:
        where = (event.get("location") or {}).get("displayName")
        lines.append(f"- {event['start']['dateTime'][:16].replace('T', ' ')}–{event['end']['dateTime'][11:16]} "
                     f"{event.get('subject') or '(no subject)'}{f' ({where})' if where else ''}")
    return "\n".join(lines)


MY_CALENDAR = ToolSpec(name="my_calendar", description="The signed-in person's meetings between two dates or times.",
                       args=CalendarArgs, run=run, acts_as_person=True)
