"""Microsoft Graph emulator: a read-only slice of Graph v1.0 over HTTPS, with Entra token checks and test knobs.

Clients (httpx, the Graph SDKs, agent tools) call it as they call https://graph.microsoft.com, with the person's own
delegated token (on-behalf-of from the Entra emulator, `aud=https://graph.microsoft.com`):
- `GET /v1.0/me`, `GET /v1.0/me/manager`, `GET /v1.0/users/{id | userPrincipalName}`;
- `GET /v1.0/me/calendarView?startDateTime=…&endDateTime=…` (also `/me/calendar/calendarView`), honouring
  `Prefer: outlook.timezone="…"` (IANA or Windows names) and `outlook.body-content-type="text"`;
- `GET /v1.0/me/people[?$search=…]` and `GET /v1.0/users[?$search="displayName:…"]` (with `ConsistencyLevel:
  eventual`, which Graph requires for `$search` on directory objects).
Graph's shapes: `@odata.context`, `value`, `@odata.nextLink` (Outlook and People page with `$skip`, the directory
with an opaque `$skiptoken`), `request-id`/`client-request-id` headers, and Graph's error bodies (401
`InvalidAuthenticationToken` with `WWW-Authenticate`, 403 `Authorization_RequestDenied`/`ErrorAccessDenied`, 400 for
app-only tokens on /me, 404 `Request_ResourceNotFound`). Path segments are case-insensitive, as in Graph.

Data is per person, keyed by the token's `oid`: Ada Lovelace and Grace Hopper (matched by user principal name) have
profiles, colleagues and a week of meetings generated relative to "now"; any other person of the emulated tenant
gets a plain profile and one meeting. Test knobs: fault injection (in process or under `/_emulator/faults`) and
`requests`, a record of every Graph call (no Authorization header; the token's claims).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jwt
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localdev.faults import EmulatorControls, FaultQueue
from localdev.tokens import TokenVerifier

log = logging.getLogger(__name__)

GRAPH_AUDIENCES = ("https://graph.microsoft.com", "https://graph.microsoft.com/", "00000003-0000-0000-c000-000000000000")
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
FAULT_KINDS = ("429", "503", "500", "timeout")
RECORDED_CLAIMS = ("oid", "tid", "scp", "roles", "aud", "appid", "idtyp")
SECRET_HEADERS = {"authorization", "cookie"}
DEFAULT_PAGE = {"calendarView": 10, "people": 10, "users": 100}

# Delegated permissions (scp) and application permissions (roles) each endpoint accepts, least privileged first.
USER_READ = frozenset({"User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All",
                       "Directory.Read.All", "Directory.ReadWrite.All"})
USERS_READ = frozenset({"User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
                        "Directory.ReadWrite.All"})
USERS_READ_APP = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
CALENDARS_READ = frozenset({"Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"})
PEOPLE_READ = frozenset({"People.Read", "People.Read.All"})

USER_DEFAULT_PROPERTIES = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                           "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id")
USER_PROPERTIES = USER_DEFAULT_PROPERTIES + ("department", "companyName", "city", "country", "accountEnabled",
                                             "userType", "usageLocation")
USER_SEARCHABLE = ("displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "department")
# Windows time zone names Outlook also accepts in `Prefer: outlook.timezone`, and the ones it reports for events.
WINDOWS_ZONES = {"UTC": "UTC", "GMT Standard Time": "Europe/London", "Romance Standard Time": "Europe/Paris",
                 "W. Europe Standard Time": "Europe/Berlin", "Central European Standard Time": "Europe/Warsaw",
                 "Eastern Standard Time": "America/New_York", "Central Standard Time": "America/Chicago",
                 "Pacific Standard Time": "America/Los_Angeles", "Tokyo Standard Time": "Asia/Tokyo",
                 "India Standard Time": "Asia/Kolkata", "AUS Eastern Standard Time": "Australia/Sydney"}
IANA_TO_WINDOWS = {iana: windows for windows, iana in WINDOWS_ZONES.items()}

ACCESS_DENIED = ("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
INSUFFICIENT = ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


# ---- the emulated directory -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    """A user object of the emulated tenant."""

    oid: str
    display_name: str
    given_name: str
    surname: str
    upn: str
    job_title: str | None = None
    department: str | None = None
    office_location: str | None = None
    city: str | None = None
    country: str | None = None
    preferred_language: str | None = None
    business_phones: tuple[str, ...] = ()
    mobile_phone: str | None = None
    manager: str | None = None  # the manager's user principal name
    time_zone: str = "UTC"  # where the person's meetings are planned (IANA)

    def user(self) -> dict:
        """The user resource with Graph's property names (every property this emulator knows)."""
        return {"businessPhones": list(self.business_phones), "displayName": self.display_name,
                "givenName": self.given_name, "jobTitle": self.job_title, "mail": self.upn,
                "mobilePhone": self.mobile_phone, "officeLocation": self.office_location,
                "preferredLanguage": self.preferred_language, "surname": self.surname,
                "userPrincipalName": self.upn, "id": self.oid, "department": self.department,
                "companyName": "Contoso", "city": self.city, "country": self.country, "accountEnabled": True,
                "userType": "Member", "usageLocation": self.country}


def _oid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"graph-emulator:{name}"))


ADA, GRACE = "ada@contoso.example", "grace@contoso.example"
# Profiles for the people who sign in (their oids come from the Entra emulator's users), matched by UPN.
PROFILES = {
    ADA: dict(job_title="Principal Engineer", department="Analytical Engines", office_location="London, Marylebone 3.12",
              city="London", country="GB", preferred_language="en-GB", business_phones=("+44 20 7946 0018",),
              mobile_phone="+44 7700 900181", manager="charles@contoso.example", time_zone="Europe/London"),
    GRACE: dict(job_title="Director of Compilers", department="Compilers", office_location="Arlington, Building 1 B-204",
                city="Arlington", country="US", preferred_language="en-US", business_phones=("+1 703 555 0106",),
                time_zone="America/New_York"),
}
# Colleagues who never sign in: managers, teammates and people to search for.
COLLEAGUES = (
    Person(_oid("charles"), "Charles Babbage", "Charles", "Babbage", "charles@contoso.example", "Head of Engineering",
           "Analytical Engines", "London, Marylebone 4.01", "London", "GB", "en-GB", ("+44 20 7946 0001",),
           time_zone="Europe/London"),
    Person(_oid("mary"), "Mary Somerville", "Mary", "Somerville", "mary@contoso.example", "Research Fellow",
           "Analytical Engines", "London, Marylebone 3.10", "London", "GB", "en-GB", ("+44 20 7946 0012",),
           manager="charles@contoso.example", time_zone="Europe/London"),
    Person(_oid("alan"), "Alan Turing", "Alan", "Turing", "alan@contoso.example", "Research Scientist",
           "Analytical Engines", "Manchester, Oxford Road 2.07", "Manchester", "GB", "en-GB", ("+44 161 496 0042",),
           manager="charles@contoso.example", time_zone="Europe/London"),
    Person(_oid("augustus"), "Augustus De Morgan", "Augustus", "De Morgan", "augustus@contoso.example",
           "Professor of Mathematics", "Research", "London, Gower Street 1.01", "London", "GB", "en-GB",
           ("+44 20 7946 0031",), time_zone="Europe/London"),
    Person(_oid("katherine"), "Katherine Johnson", "Katherine", "Johnson", "katherine@contoso.example",
           "Lead Mathematician", "Compilers", "Hampton, Building 1244", "Hampton", "US", "en-US", ("+1 757 555 0133",),
           manager=GRACE, time_zone="America/New_York"),
    Person(_oid("margaret"), "Margaret Hamilton", "Margaret", "Hamilton", "margaret@contoso.example",
           "Software Engineering Lead", "Compilers", "Cambridge, Tech Square 5", "Cambridge", "US", "en-US",
           ("+1 617 555 0169",), manager=GRACE, time_zone="America/New_York"),
    Person(_oid("dorothy"), "Dorothy Vaughan", "Dorothy", "Vaughan", "dorothy@contoso.example", "Programming Manager",
           "Compilers", "Hampton, Building 1268", "Hampton", "US", "en-US", ("+1 757 555 0150",), manager=GRACE,
           time_zone="America/New_York"),
    Person(_oid("annie"), "Annie Easley", "Annie", "Easley", "annie@contoso.example", "Software Engineer",
           "Compilers", "Cleveland, Lewis Field 3", "Cleveland", "US", "en-US", ("+1 216 555 0177",),
           manager="dorothy@contoso.example", time_zone="America/New_York"),
)
# The people each person works with most, most relevant first (the People API ranks by communication).
RELEVANT = {
    ADA: ("charles", "mary", "alan", "augustus", "grace", "katherine"),
    GRACE: ("katherine", "margaret", "dorothy", "annie", "ada", "alan"),
}


@dataclass(frozen=True)
class Meeting:
    """A meeting planned in the organiser's zone: `day` after today (local), at `at` for `minutes`."""

    day: int
    at: str
    minutes: int
    subject: str
    location: str
    attendees: tuple[str, ...] = ()  # local parts of colleagues' UPNs
    organizer: str | None = None  # a colleague's local part; None = the calendar's owner
    online: bool = False
    body: str = ""
    series: str | None = None  # a recurring meeting's series key (its occurrences share a seriesMasterId)


MEETINGS = {
    ADA: (
        *(Meeting(day, "09:30", 15, "Daily stand-up", "Microsoft Teams Meeting", ("charles", "alan"), online=True,
                  body="What did we do yesterday, what next, anything blocking?", series="standup")
          for day in range(7)),
        Meeting(0, "14:00", 30, "1:1 with Charles", "Charles's office", ("charles",), organizer="charles",
                body="Weekly one-to-one."),
        Meeting(0, "16:00", 60, "Difference Engine retrospective", "Room 2.14", ("charles", "alan", "mary"),
                body="What went well, what did not, what we change."),
        Meeting(1, "10:00", 60, "Design review", "Room 3.01 (Analytical Engine)", ("charles", "alan", "mary"),
                body="Review of the store and mill design before the build starts."),
        Meeting(1, "12:30", 60, "Lunch with Mary Somerville", "The Athenaeum, Pall Mall", ("mary",)),
        Meeting(2, "11:00", 60, "Bernoulli numbers walkthrough", "Room 3.01 (Analytical Engine)", ("alan", "augustus"),
                body="Step through Note G together."),
        Meeting(3, "15:00", 60, "Hiring panel: research engineer", "Room 1.07", ("charles", "augustus"),
                organizer="charles"),
        Meeting(4, "13:00", 120, "Notes on the Analytical Engine: editing session", "Library", ("augustus",)),
        Meeting(5, "10:00", 90, "Quarterly planning", "Board room", ("charles", "alan", "mary"), organizer="charles",
                body="Goals for next quarter."),
    ),
    GRACE: (
        Meeting(0, "09:00", 30, "Compiler team sync", "Room B-204", ("katherine", "margaret", "dorothy")),
        Meeting(0, "13:00", 60, "COBOL standards call", "Microsoft Teams Meeting", ("dorothy",), online=True),
        Meeting(1, "10:00", 60, "Navy briefing", "Pentagon, Room 3E-880", ("katherine",)),
        Meeting(2, "11:00", 30, "1:1 with Margaret", "Room B-204", ("margaret",)),
        Meeting(3, "16:00", 60, "Nanosecond talk rehearsal", "Auditorium", ("annie",)),
    ),
}
OTHERS_MEETINGS = (Meeting(1, "10:00", 30, "Team meeting", "Microsoft Teams Meeting", online=True),)


class GraphError(Exception):
    """A Graph error answer: HTTP status, Graph's error code and message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, inner: dict | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers, self.inner = status, code, message, headers or {}, inner


# ---- faults ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """One injected failure: "429" (with `retry_after` s), "503" (with `retry_after` s), "500", or "timeout" (holds
    the request `seconds`, then answers 504). `path`: only requests whose path starts with it (e.g. "/v1.0/users")."""

    kind: str
    retry_after: int = 1
    seconds: float = 30.0
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; known: {', '.join(FAULT_KINDS)}")

    def applies_to(self, path: str) -> bool:
        return self.path is None or path.lower().startswith(self.path.lower())


class FaultInjector(FaultQueue):
    """The queue of injected faults (first one for the path wins), then a random rate."""

    def __init__(self) -> None:
        super().__init__(Fault, ("429", "503"))

    def next_fault(self, path: str) -> Fault | None:
        return self.take(lambda fault: fault.applies_to(path))


# ---- what each endpoint needs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Access:
    """Permissions an endpoint accepts: delegated (`scp`) and application (`roles`; empty = delegated only)."""

    delegated: frozenset[str]
    application: frozenset[str] = frozenset()
    me: bool = False  # a /me path: an app-only token is a 400, as Graph answers
    denied: tuple[str, str] = INSUFFICIENT


@dataclass
class _Call:
    request: Request
    request_id: str
    client_request_id: str
    claims: dict = field(default_factory=dict)
    person: Person | None = None
    preferences: list[str] = field(default_factory=list)  # Preference-Applied


class GraphEmulator(EmulatorControls):
    """The emulated Microsoft Graph. Serve `.app` over TLS; read `.requests`; inject faults with `inject`."""

    def __init__(self, *, jwks_url: str, ca_file: Path | None, users: Iterable = (), issuer: str | None = None,
                 leeway_seconds: float = 10.0,
                 authorization_uri: str = "https://login.microsoftonline.com/common/oauth2/authorize",
                 now: Callable[[], datetime] | None = None, region: str = "Local Emulator") -> None:
        self.requests: list[dict] = []
        self.faults = FaultInjector()
        self.authorization_uri = authorization_uri
        self.now = now or (lambda: datetime.now(timezone.utc))  # a test may freeze the clock the calendar uses
        self.region = region
        self._verifier = TokenVerifier(jwks_url, ca_file, audience=list(GRAPH_AUDIENCES), issuer=issuer,
                                       leeway=leeway_seconds)
        self.directory: dict[str, Person] = {}  # oid -> person
        for person in COLLEAGUES:
            self.directory[person.oid] = person
        for user in users:
            self.add_user(user)
        routes = {
            ("me",): (Access(USER_READ, me=True), self._me),
            ("me", "manager"): (Access(USERS_READ, me=True), self._my_manager),
            ("me", "calendarview"): (Access(CALENDARS_READ, me=True, denied=ACCESS_DENIED), self._calendar_view),
            ("me", "calendar", "calendarview"): (Access(CALENDARS_READ, me=True, denied=ACCESS_DENIED),
                                                 self._calendar_view),
            ("me", "people"): (Access(PEOPLE_READ, me=True, denied=ACCESS_DENIED), self._people),
            ("users",): (Access(USERS_READ, USERS_READ_APP), self._users),
            ("users", "*"): (Access(USERS_READ, USERS_READ_APP), self._user),
        }
        self._routes = routes
        self.app = Starlette(routes=[
            Route("/_emulator/faults", self._faults_route, methods=["GET", "POST", "DELETE"]),
            Route("/_emulator/requests", self._requests_route, methods=["GET", "DELETE"]),
            Route("/{version}/{rest:path}", self._graph, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ], exception_handlers={404: self._not_routed, 405: self._not_routed})

    # ---- test knobs ----
    def add_user(self, user) -> Person:
        """Add a person of the tenant (anything with oid, name and preferred_username, e.g. entra.TestUser)."""
        upn = user.preferred_username.lower()
        given, _, surname = user.name.partition(" ")
        person = Person(user.oid, user.name, given, surname, upn, **PROFILES.get(upn, {}))
        for oid, known in list(self.directory.items()):  # a colleague who now signs in keeps one directory entry
            if known.upn == upn:
                del self.directory[oid]
        self.directory[person.oid] = person
        return person

    def inject(self, fault: str, count: int = 1, **options) -> None:
        """Queue `count` copies of a fault, e.g. inject("429", count=2, retry_after=3, path="/v1.0/me/calendarView")."""
        self.faults.inject(fault, count, **options)

    def set_fault_rate(self, rate: float, faults: list[str] | None = None, seed: int | None = None, **options) -> None:
        """Fail a random share `rate` of calls with one of `faults` (default 429 and 503), reproducible by seed."""
        self.faults.set_rate(rate, faults, seed, **options)

    def clear_faults(self) -> None:
        self.faults.clear()

    def person_by_upn(self, upn: str) -> Person | None:
        return next((p for p in self.directory.values() if p.upn == upn.lower()), None)

    def events_for(self, oid: str) -> list[dict]:
        """A person's meetings from today (in their own zone) to six days ahead, as internal records in UTC."""
        person = self.directory[oid]
        meetings = MEETINGS.get(person.upn, OTHERS_MEETINGS)
        zone = ZoneInfo(person.time_zone)
        today = self.now().astimezone(zone).date()
        return sorted((self._event(person, meeting, today, zone) for meeting in meetings),
                      key=lambda e: (e["start"], e["subject"]))

    # ---- the Graph surface ----
    async def _graph(self, request: Request) -> Response:
        call = _Call(request, str(uuid.uuid4()), "")
        call.client_request_id = request.headers.get("client-request-id") or call.request_id
        record = {"method": request.method, "path": request.url.path, "query": dict(request.query_params),
                  "headers": {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS},
                  "token_claims": None, "request_id": call.request_id, "status": None, "fault": None}
        self.requests.append(record)
        try:
            response = await self._dispatch(call, record)
        except GraphError as exc:
            response = self._error(call, exc)
        record["status"] = response.status_code
        return response

    async def _dispatch(self, call: _Call, record: dict) -> Response:
        request = call.request
        version = request.path_params["version"]
        if version.lower() != "v1.0":
            raise GraphError(400, "BadRequest", f"Invalid version: {version}")
        segments = [s for s in request.path_params["rest"].split("/") if s]
        key = tuple("*" if i == 1 and segments[0].lower() == "users" else s.lower() for i, s in enumerate(segments))
        route = self._routes.get(key)
        if route is None:
            known = {k[:i] for k in self._routes for i in range(1, len(k) + 1)}
            bad = next((segments[i] for i in range(len(key)) if key[: i + 1] not in known), version)
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{bad}'.")
        if request.method != "GET":
            raise GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
        access, handler = route
        call.claims = await self._authenticate(request)
        record["token_claims"] = {name: call.claims.get(name) for name in RECORDED_CLAIMS}
        self._authorize(call, access)
        fault = self.faults.next_fault(request.url.path)
        if fault:
            record["fault"] = fault.kind
            log.info("injecting Graph fault %s into request %s", fault.kind, call.request_id)
            await self._raise_fault(fault)
        return self._ok(call, handler(call, segments))

    async def _authenticate(self, request: Request) -> dict:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("Access token is empty.")
        if token.count(".") != 2:
            raise _unauthorized("CompactToken parsing failed with error code: 80049217")
        try:  # in a worker thread: the first use fetches the JWKS with a blocking HTTPS call
            claims = await run_in_threadpool(self._verifier.verify, token)
        except jwt.ExpiredSignatureError:
            raise _unauthorized("Lifetime validation failed, the token is expired.") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("Lifetime validation failed, the token is not yet valid.") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("Access token validation failure. Invalid audience.") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("Access token validation failure. Invalid issuer.") from None
        except jwt.DecodeError as exc:
            if isinstance(exc, jwt.InvalidSignatureError):
                raise _unauthorized("Access token validation failure.") from None
            raise _unauthorized("CompactToken parsing failed with error code: 80049217") from None
        except jwt.PyJWTError as exc:
            log.warning("rejected Graph access token: %s", type(exc).__name__)  # never the token itself
            raise _unauthorized("Access token validation failure.") from None
        if "scp" not in claims and "roles" not in claims:
            raise _unauthorized("Either scp or roles claim need to be present in the token.")
        return claims

    def _authorize(self, call: _Call, access: Access) -> None:
        claims = call.claims
        delegated = "scp" in claims and claims.get("idtyp") != "app"
        if not delegated:
            if access.me:
                raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            granted = {r.lower() for r in claims.get("roles") or []}
            if not granted & {p.lower() for p in access.application}:
                raise GraphError(403, *access.denied)
            return
        granted = {s.lower() for s in str(claims.get("scp", "")).split()}
        if not granted & {p.lower() for p in access.delegated}:
            raise GraphError(403, *access.denied)
        call.person = self.directory.get(str(claims.get("oid", "")))
        if call.person is None and access.me:
            raise _not_found(str(claims.get("oid", "")))

    async def _raise_fault(self, fault: Fault) -> None:
        if fault.kind == "429":
            raise GraphError(429, "TooManyRequests", "Please retry again later.",
                             {"retry-after": str(fault.retry_after)},
                             inner={"code": "429", "message": "Please retry after", "status": "429"})
        if fault.kind == "503":
            raise GraphError(503, "ServiceNotAvailable", "The service is temporarily unavailable. Please retry "
                             "after the number of seconds in the Retry-After header.",
                             {"retry-after": str(fault.retry_after)})
        if fault.kind == "500":
            raise GraphError(500, "generalException", "General exception while processing.")
        await asyncio.sleep(fault.seconds)  # "timeout": the client's own timeout is meant to fire first
        raise GraphError(504, "UnknownError", "")

    # ---- endpoints: each returns the JSON body ----
    def _me(self, call: _Call, segments: list[str]) -> dict:
        _options(call, {"$select"})
        fields = _select(call, USER_PROPERTIES, USER_DEFAULT_PROPERTIES)
        return {"@odata.context": self._context(call, "users", entity=True),
                **_project(call.person.user(), fields)}

    def _my_manager(self, call: _Call, segments: list[str]) -> dict:
        _options(call, {"$select"})
        manager = self.person_by_upn(call.person.manager) if call.person.manager else None
        if manager is None:
            raise GraphError(404, "Request_ResourceNotFound", "Resource 'manager' does not exist or one of its "
                             "queried reference-property objects are not present.")
        fields = _select(call, USER_PROPERTIES, USER_DEFAULT_PROPERTIES)
        return {"@odata.context": f"{_base(call)}/v1.0/$metadata#directoryObjects/$entity",
                "@odata.type": "#microsoft.graph.user", **_project(manager.user(), fields)}

    def _user(self, call: _Call, segments: list[str]) -> dict:
        _options(call, {"$select"})
        wanted = segments[1]
        person = self.directory.get(wanted) or self.person_by_upn(wanted)
        if person is None:
            raise _not_found(wanted)
        fields = _select(call, USER_PROPERTIES, USER_DEFAULT_PROPERTIES)
        return {"@odata.context": self._context(call, "users", entity=True), **_project(person.user(), fields)}

    def _users(self, call: _Call, segments: list[str]) -> dict:
        query = _options(call, {"$search", "$top", "$skiptoken", "$select", "$count"})
        eventual = call.request.headers.get("consistencylevel", "").strip().lower() == "eventual"
        for option in ("$search", "$count"):
            if option in query and not eventual:
                raise GraphError(400, "Request_UnsupportedQuery", f"Request with {option} query parameter only works "
                                 "through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
        people = sorted(self.directory.values(), key=lambda p: (p.display_name.lower(), p.oid))
        if "$search" in query:
            matches = _directory_search(query["$search"])
            people = [p for p in people if matches(p.user())]
        top = _top(query, DEFAULT_PAGE["users"], 999, "Request_UnsupportedQuery",
                   "Invalid page size specified: '{value}'. Must be between 1 and 999 inclusive.")
        offset = _read_skiptoken(query.get("$skiptoken"))
        fields = _select(call, USER_PROPERTIES, USER_DEFAULT_PROPERTIES)
        page = people[offset: offset + top]
        body = {"@odata.context": self._context(call, "users")}
        if query.get("$count", "").lower() == "true":
            body["@odata.count"] = len(people)
        if offset + top < len(people):
            body["@odata.nextLink"] = _next_link(call, {"$skiptoken": _skiptoken(offset + top)}, drop=("$skiptoken",))
        body["value"] = [_project(p.user(), fields) for p in page]
        return body

    def _calendar_view(self, call: _Call, segments: list[str]) -> dict:
        query = _options(call, {"$top", "$skip", "$select", "$orderby"})
        raw = {k.lower(): v for k, v in call.request.query_params.items()}
        if not raw.get("startdatetime") or not raw.get("enddatetime"):
            raise GraphError(400, "ErrorInvalidParameter", "This request requires a time window specified by the "
                             "query string parameters StartDateTime and EndDateTime.")
        window_start = _parse_instant(raw["startdatetime"], "StartDateTime")
        window_end = _parse_instant(raw["enddatetime"], "EndDateTime")
        zone_name, zone = self._preferred_zone(call)
        text_body = _prefer(call.request, "outlook.body-content-type") == "text"
        if text_body:
            call.preferences.append('outlook.body-content-type="text"')
        basic = not ({s.lower() for s in str(call.claims.get("scp", "")).split()}
                     & {"calendars.read", "calendars.readwrite"})  # Calendars.ReadBasic: no body
        events = [e for e in self.events_for(call.person.oid) if e["start"] < window_end and e["end"] > window_start]
        order = query.get("$orderby", "start/dateTime").strip()
        key_name, _, direction = order.partition(" ")
        keys = {"start/datetime": "start", "end/datetime": "end", "subject": "subject"}
        if key_name.lower() not in keys or direction.strip().lower() not in ("", "asc", "desc"):
            raise GraphError(400, "BadRequest", f"The $orderby expression '{order}' is not supported by the local "
                             "Microsoft Graph emulator (start/dateTime, end/dateTime or subject, asc or desc).")
        events.sort(key=lambda e: (e[keys[key_name.lower()]], e["start"]), reverse=direction.strip().lower() == "desc")
        top = _top(query, DEFAULT_PAGE["calendarView"], 1000, "ErrorInvalidParameter",
                   "The value '{value}' of parameter 'Top' is invalid.")
        skip = _skip(query)
        fields = _select(call, EVENT_PROPERTIES, EVENT_PROPERTIES, always=("@odata.etag", "id"))
        page = events[skip: skip + top]
        body = {"@odata.context": f"{_base(call)}/v1.0/$metadata#users('{call.person.oid}')/calendarView"
                                  + _selected(call)}
        if skip + top < len(events):
            body["@odata.nextLink"] = _next_link(call, {"$top": str(top), "$skip": str(skip + top)},
                                                 drop=("$top", "$skip"))
        body["value"] = [_project(_event_json(e, zone_name, zone, text_body, basic), fields, ("@odata.etag", "id"))
                         for e in page]
        return body

    def _people(self, call: _Call, segments: list[str]) -> dict:
        query = _options(call, {"$search", "$top", "$skip", "$select"})
        me = call.person
        ranked = [self.person_by_upn(f"{name}@contoso.example") for name in RELEVANT.get(me.upn, ())]
        ranked = [p for p in ranked if p is not None]
        rest = sorted((p for p in self.directory.values() if p not in ranked and p.oid != me.oid),
                      key=lambda p: p.display_name.lower())
        people = ranked + rest
        if query.get("$search"):
            terms = [t for t in re.split(r"[^\w@.]+", query["$search"].strip().strip('"').lower()) if t]
            people = [p for p in people if all(any(word.startswith(t) for word in _words(p)) for t in terms)]
        top = _top(query, DEFAULT_PAGE["people"], 1000, "ErrorInvalidParameter",
                   "The value '{value}' of parameter 'Top' is invalid.")
        skip = _skip(query)
        fields = _select(call, PERSON_PROPERTIES, PERSON_PROPERTIES)
        body = {"@odata.context": f"{_base(call)}/v1.0/$metadata#users('{me.oid}')/people" + _selected(call)}
        if skip + top < len(people):
            body["@odata.nextLink"] = _next_link(call, {"$top": str(top), "$skip": str(skip + top)},
                                                 drop=("$top", "$skip"))
        body["value"] = [_project(_person_json(p, rank, len(people)), fields, ("id",))
                         for rank, p in enumerate(people[skip: skip + top], start=skip)]
        return body

    # ---- shapes ----
    def _event(self, owner: Person, meeting: Meeting, today: date, zone: ZoneInfo) -> dict:
        hour, minute = (int(x) for x in meeting.at.split(":"))
        local = datetime.combine(today + timedelta(days=meeting.day), time(hour, minute), tzinfo=zone)
        start = local.astimezone(timezone.utc)
        seed = f"{owner.oid}|{local.date().isoformat()}|{meeting.subject}"
        digest = hashlib.sha256(seed.encode()).digest()
        organizer = (self.person_by_upn(f"{meeting.organizer}@contoso.example") if meeting.organizer else owner) or owner
        attendees = [p for p in (self.person_by_upn(f"{name}@contoso.example") for name in meeting.attendees) if p]
        if organizer is not owner and owner not in attendees:
            attendees.append(owner)
        attendees = [p for p in attendees if p is not organizer]
        series = (hashlib.sha256(f"{owner.oid}|{meeting.series}".encode()).digest() if meeting.series else None)
        return {"id": "AAMkAGVtdWxhdG9y" + base64.urlsafe_b64encode(digest[:30]).decode(),
                "ical": "040000008200E00074C5B7101A82E008" + digest[:24].hex().upper(),
                "change_key": base64.b64encode(digest[-12:]).decode(),
                "series_master": "AAMkAGVtdWxhdG9y" + base64.urlsafe_b64encode(series[:30]).decode() if series else None,
                "subject": meeting.subject, "start": start, "end": start + timedelta(minutes=meeting.minutes),
                "original_zone": owner.time_zone, "location": meeting.location, "online": meeting.online,
                "body": meeting.body, "organizer": organizer, "owner": owner, "attendees": attendees}

    def _preferred_zone(self, call: _Call) -> tuple[str, ZoneInfo | timezone]:
        """The zone of `Prefer: outlook.timezone="…"` (as the client named it), else UTC as Graph answers."""
        wanted = _prefer(call.request, "outlook.timezone")
        if wanted:
            try:
                zone = ZoneInfo(WINDOWS_ZONES.get(wanted, wanted))
            except (ZoneInfoNotFoundError, ValueError):
                zone = None
            if zone is not None:
                call.preferences.append(f'outlook.timezone="{wanted}"')
                return wanted, zone
        return "UTC", timezone.utc

    def _context(self, call: _Call, entity_set: str, *, entity: bool = False) -> str:
        return f"{_base(call)}/v1.0/$metadata#{entity_set}{_selected(call)}" + ("/$entity" if entity else "")

    def _headers(self, call: _Call) -> dict:
        diagnostic = {"ServerInfo": {"DataCenter": self.region, "Slice": "E", "Ring": "0", "ScaleUnit": "000",
                                     "RoleInstance": "localhost"}}
        return {"request-id": call.request_id, "client-request-id": call.client_request_id,
                "x-ms-ags-diagnostic": json.dumps(diagnostic, separators=(",", ":")),
                "strict-transport-security": "max-age=31536000"}

    def _ok(self, call: _Call, body: dict) -> Response:
        headers = {**self._headers(call), "odata-version": "4.0", "cache-control": "no-cache"}
        if call.preferences:
            headers["preference-applied"] = ", ".join(call.preferences)
        return JSONResponse(body, 200, headers, media_type=ODATA_JSON)

    def _error(self, call: _Call, exc: GraphError) -> Response:
        inner = {**(exc.inner or {}), "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                 "request-id": call.request_id, "client-request-id": call.client_request_id}
        headers = {**self._headers(call), **exc.headers}
        if exc.status == 401:
            headers["www-authenticate"] = (f'Bearer realm="", authorization_uri="{self.authorization_uri}", '
                                           f'client_id="{GRAPH_APP_ID}"')
        body = {"error": {"code": exc.code, "message": exc.message, "innerError": inner}}
        return JSONResponse(body, exc.status, headers)

    async def _not_routed(self, request: Request, exc: Exception) -> Response:
        call = _Call(request, str(uuid.uuid4()), request.headers.get("client-request-id", ""))
        call.client_request_id = call.client_request_id or call.request_id
        return self._error(call, GraphError(400, "BadRequest", f"Invalid request: {request.url.path}"))

    # ---- control routes (the same test knobs over HTTP): EmulatorControls in localdev/faults.py ----


# ---- helpers: query options, paging, projection ------------------------------------------------------------------
EVENT_PROPERTIES = ("@odata.etag", "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories",
                    "transactionId", "originalStartTimeZone", "originalEndTimeZone", "iCalUId",
                    "reminderMinutesBeforeStart", "isReminderOn", "hasAttachments", "subject", "bodyPreview",
                    "importance", "sensitivity", "isAllDay", "isCancelled", "isOrganizer", "responseRequested",
                    "seriesMasterId", "showAs", "type", "webLink", "onlineMeetingUrl", "isOnlineMeeting",
                    "onlineMeetingProvider", "allowNewTimeProposals", "isDraft", "hideAttendees", "responseStatus",
                    "body", "start", "end", "location", "locations", "recurrence", "attendees", "organizer",
                    "onlineMeeting")
PERSON_PROPERTIES = ("id", "displayName", "givenName", "surname", "birthday", "personNotes", "isFavorite", "jobTitle",
                     "companyName", "yomiCompany", "department", "officeLocation", "profession", "userPrincipalName",
                     "imAddress", "scoredEmailAddresses", "phones", "personType")


def _base(call: _Call) -> str:
    url = call.request.url
    return f"{url.scheme}://{url.netloc}"


def _selected(call: _Call) -> str:
    """The `(a,b)` part of @odata.context for a $select request."""
    value = next((v for k, v in call.request.query_params.items() if k.lower() == "$select"), None)
    return f"({','.join(part.strip() for part in value.split(',') if part.strip())})" if value else ""


def _unauthorized(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message)


def _not_found(name: str) -> GraphError:
    return GraphError(404, "Request_ResourceNotFound", f"Resource '{name}' does not exist or one of its queried "
                      "reference-property objects are not present.")


def _options(call: _Call, supported: set[str]) -> dict[str, str]:
    """The request's OData system query options ($-prefixed, case-insensitive); unsupported ones are a 400."""
    options = {}
    for name, value in call.request.query_params.items():
        if not name.startswith("$"):
            continue
        if name.lower() not in supported:
            raise GraphError(400, "BadRequest", f"Query option '{name}' is not supported by the local Microsoft "
                             f"Graph emulator on {call.request.url.path} (supported: {', '.join(sorted(supported))}).")
        options[name.lower()] = value
    return options


def _top(query: dict, default: int, maximum: int, code: str, message: str) -> int:
    value = query.get("$top")
    if value is None:
        return default
    try:
        top = int(value)
    except ValueError:
        top = 0
    if not 1 <= top <= maximum:
        raise GraphError(400, code, message.format(value=value))
    return top


def _skip(query: dict) -> int:
    value = query.get("$skip", "0")
    if not value.isdigit():
        raise GraphError(400, "ErrorInvalidParameter", f"The value '{value}' of parameter 'Skip' is invalid.")
    return int(value)


def _skiptoken(offset: int) -> str:
    """An opaque directory paging token (Graph's are opaque too: clients follow @odata.nextLink as it is)."""
    return "RFNwdAIA" + base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _read_skiptoken(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = token.removeprefix("RFNwdAIA")
        offset = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["o"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise GraphError(400, "Directory_ExpiredPageToken", "The specified page token value has expired and can no "
                     "longer be included in your request.")


def _next_link(call: _Call, updates: dict[str, str], drop: tuple[str, ...]) -> str:
    """The same request's URL with paging options replaced: clients (and SDKs) follow it as it is."""
    kept = [(k, v) for k, v in call.request.query_params.multi_items() if k.lower() not in drop]
    return f"{_base(call)}{call.request.url.path}?" + urlencode(kept + list(updates.items()), safe="$:,'/")


def _select(call: _Call, known: tuple[str, ...], default: tuple[str, ...], always: tuple[str, ...] = ()) -> list[str]:
    value = next((v for k, v in call.request.query_params.items() if k.lower() == "$select"), None)
    if value is None:
        return list(default)
    by_lower = {name.lower(): name for name in known}
    chosen = []
    for name in (part.strip() for part in value.split(",") if part.strip()):
        if name.lower() not in by_lower:
            raise GraphError(400, "BadRequest", f"Could not find a property named '{name}' on type "
                             f"'microsoft.graph.{'event' if 'subject' in by_lower else 'user'}'.")
        chosen.append(by_lower[name.lower()])
    return [name for name in always if name not in chosen] + chosen


def _project(resource: dict, fields: list[str], always: tuple[str, ...] = ()) -> dict:
    return {name: resource.get(name) for name in dict.fromkeys([*always, *fields])}


def _prefer(request: Request, name: str) -> str | None:
    """A preference's value from the Prefer header(s), e.g. outlook.timezone="Europe/Paris" -> Europe/Paris."""
    for header in request.headers.getlist("prefer"):
        match = re.search(rf'(?:^|[,;\s]){re.escape(name)}\s*=\s*"?([^",;]*)"?', header, re.IGNORECASE)
        if match:
            return match.group(1).strip()
    return None


def _parse_instant(value: str, name: str) -> datetime:
    """An ISO 8601 instant; without an offset it is UTC (as Graph reads calendarView's window)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "+"))  # an unencoded '+' arrives as a space
    except ValueError:
        raise GraphError(400, "ErrorInvalidParameter", f"The value '{value}' of parameter '{name}' is invalid.") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _graph_time(moment: datetime, zone) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S.0000000")


def _email(person: Person) -> dict:
    return {"emailAddress": {"name": person.display_name, "address": person.upn}}


def _event_json(event: dict, zone_name: str, zone, text_body: bool, basic: bool) -> dict:
    owner, organizer = event["owner"], event["organizer"]
    is_organizer = organizer is owner
    created = (event["start"] - timedelta(days=14)).replace(hour=8, minute=0)
    body_text = event["body"]
    body = ({"contentType": "text", "content": body_text} if text_body else
            {"contentType": "html", "content": f"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; "
                                               f"charset=utf-8\"></head><body><p>{body_text}</p></body></html>"})
    location = {"displayName": event["location"], "locationType": "default", "uniqueId": event["location"],
                "uniqueIdType": "private"}
    join = f"https://teams.microsoft.com/l/meetup-join/{event['ical'][-16:].lower()}" if event["online"] else None
    windows_zone = IANA_TO_WINDOWS.get(event["original_zone"], event["original_zone"])
    resource = {
        "@odata.etag": f'W/"{event["change_key"]}"', "id": event["id"],
        "createdDateTime": created.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "lastModifiedDateTime": (created + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "changeKey": event["change_key"], "categories": [], "transactionId": None,
        "originalStartTimeZone": windows_zone, "originalEndTimeZone": windows_zone, "iCalUId": event["ical"],
        "reminderMinutesBeforeStart": 15, "isReminderOn": True, "hasAttachments": False, "subject": event["subject"],
        "bodyPreview": body_text, "importance": "normal", "sensitivity": "normal", "isAllDay": False,
        "isCancelled": False, "isOrganizer": is_organizer, "responseRequested": True,
        "seriesMasterId": event["series_master"], "showAs": "busy",
        "type": "occurrence" if event["series_master"] else "singleInstance",
        "webLink": f"https://outlook.office365.com/owa/?itemid={event['id']}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None, "isOnlineMeeting": event["online"],
        "onlineMeetingProvider": "teamsForBusiness" if event["online"] else "unknown",
        "allowNewTimeProposals": True, "isDraft": False, "hideAttendees": False,
        "responseStatus": {"response": "organizer" if is_organizer else "accepted",
                           "time": "0001-01-01T00:00:00Z" if is_organizer else created.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "body": body,
        "start": {"dateTime": _graph_time(event["start"], zone), "timeZone": zone_name},
        "end": {"dateTime": _graph_time(event["end"], zone), "timeZone": zone_name},
        "location": location, "locations": [location], "recurrence": None,
        "attendees": [{"type": "required", "status": {"response": "accepted" if p is owner else "none",
                                                      "time": "0001-01-01T00:00:00Z"}, **_email(p)}
                      for p in event["attendees"]],
        "organizer": _email(organizer), "onlineMeeting": {"joinUrl": join} if join else None,
    }
    if basic:  # Calendars.ReadBasic: no body, as Graph leaves it out
        resource.pop("body")
        resource.pop("bodyPreview")
    return resource


def _words(person: Person) -> list[str]:
    return [w for w in re.split(r"[^\w@.]+", f"{person.display_name} {person.upn}".lower()) if w] + [person.upn]


def _person_json(person: Person, rank: int, total: int) -> dict:
    return {"id": person.oid, "displayName": person.display_name, "givenName": person.given_name,
            "surname": person.surname, "birthday": "", "personNotes": "", "isFavorite": False,
            "jobTitle": person.job_title, "companyName": "Contoso", "yomiCompany": "", "department": person.department,
            "officeLocation": person.office_location, "profession": "", "userPrincipalName": person.upn,
            "imAddress": f"sip:{person.upn}",
            "scoredEmailAddresses": [{"address": person.upn, "relevanceScore": float(max(1, 20 - rank)),
                                      "selectionLikelihood": "notSpecified"}],
            "phones": [{"type": "business", "number": n} for n in person.business_phones],
            "personType": {"class": "Person", "subclass": "OrganizationUser"}}


def _directory_search(expression: str) -> Callable[[dict], bool]:
    """Graph's directory $search: quoted "property:value" clauses joined by AND/OR (AND binds tighter); each word of
    the value must start a word of the property (displayName) or the property itself (mail, userPrincipalName)."""
    tokens = re.findall(r'"[^"]*"|\S+', expression.strip())
    groups: list[list[tuple[str, str]]] = [[]]
    expect_clause = True
    for token in tokens:
        if expect_clause:
            if not (len(token) >= 2 and token.startswith('"') and token.endswith('"') and ":" in token):
                raise GraphError(400, "Request_UnsupportedQuery", f"Invalid $search query '{expression}': use quoted "
                                 "\"property:value\" clauses joined by AND or OR, e.g. \"displayName:ada\".")
            prop, _, value = token[1:-1].partition(":")
            known = {p.lower(): p for p in USER_SEARCHABLE}
            if prop.strip().lower() not in known:
                raise GraphError(400, "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause "
                                 f"specified for property '{prop.strip()}' of resource 'User'.")
            groups[-1].append((known[prop.strip().lower()], value.strip().lower()))
        elif token.upper() == "OR":
            groups.append([])
        elif token.upper() != "AND":
            raise GraphError(400, "Request_UnsupportedQuery", f"Invalid $search query '{expression}': expected AND "
                             f"or OR, not '{token}'.")
        expect_clause = not expect_clause
    if expect_clause:
        raise GraphError(400, "Request_UnsupportedQuery", f"Invalid $search query '{expression}'.")

    def clause(user: dict, prop: str, value: str) -> bool:
        text = str(user.get(prop) or "").lower()
        words = [w for w in re.split(r"[^\w]+", text) if w] + [text]
        return all(any(w.startswith(term) for w in words) for term in value.split()) if value else True

    return lambda user: any(all(clause(user, p, v) for p, v in group) for group in groups)
