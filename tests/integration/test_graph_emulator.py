"""The Microsoft Graph emulator of the local stack over real HTTPS, with Graph tokens obtained on-behalf-of the signed-in
person from the Entra emulator by azure-identity's OnBehalfOfCredential: Graph's shapes, paging, time zones, per-person
data, token checks, permissions, faults and the request record."""
from __future__ import annotations

import json
import ssl
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import jwt
import msal
import pytest
from azure.identity import OnBehalfOfCredential

from localdev.entra import COGNITIVE_SERVICES, DEFAULT_GRAPH_CONSENT, GRAPH_RESOURCE, TestUser
from localdev.stack import CLIENT_ID, OTHER_USER, TENANT_ID, TEST_USER, app_environment
from tests.integration.signin import posted_form

GRAPH_SCOPE = f"{GRAPH_RESOURCE}/.default"
REDIRECT = "http://127.0.0.1:8080/signin/callback"  # the stack's registered redirect URI (app_port 8080)
FROZEN = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)  # summer time: London is UTC+1, Paris UTC+2
ADA_SUBJECTS = {"Daily stand-up", "1:1 with Charles", "Difference Engine retrospective", "Design review",
                "Lunch with Mary Somerville", "Bernoulli numbers walkthrough", "Hiring panel: research engineer",
                "Notes on the Analytical Engine: editing session", "Quarterly planning"}
GRACE_SUBJECTS = {"Compiler team sync", "COBOL standards call", "Navy briefing", "1:1 with Margaret",
                  "Nanosecond talk rehearsal"}


@pytest.fixture(autouse=True)
def graph_knobs(emulators, monkeypatch):
    for name, value in emulators.tls.client_env().items():  # azure-identity and msal use requests
        monkeypatch.setenv(name, value)
    graph, entra = emulators.graph, emulators.entra
    graph.clear_faults()
    graph.requests.clear()
    now = graph.now
    yield
    graph.now = now
    graph.clear_faults()
    entra.set_graph_consent(CLIENT_ID, DEFAULT_GRAPH_CONSENT)


def context(emulators) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(emulators.tls.ca_file))


@pytest.fixture(scope="module")
def user_tokens(emulators) -> dict[str, str]:
    """Each person's token for the app's own API, from a real msal sign-in (the assertion on-behalf-of sends)."""
    tokens = {}
    with pytest.MonkeyPatch.context() as env:
        for name, value in emulators.tls.client_env().items():
            env.setenv(name, value)
        for person in (TEST_USER, OTHER_USER):
            tokens[person.oid] = _sign_in(emulators, person)
    return tokens


def _sign_in(emulators, person: TestUser) -> str:
    """A real msal sign-in through the Entra emulator's authorize and token endpoints."""
    app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=emulators.client_secret,
                                             authority=f"{emulators.entra_server.url}/{TENANT_ID}",
                                             instance_discovery=False)
    flow = app.initiate_auth_code_flow([f"api://{CLIENT_ID}/access_as_user"], redirect_uri=REDIRECT,
                                       login_hint=person.preferred_username, response_mode="form_post")
    with httpx.Client(verify=context(emulators), follow_redirects=False, timeout=10) as http:
        reply = http.get(flow["auth_uri"])
    assert reply.status_code == 200, reply.text
    _, params = posted_form(reply.text)  # the fields the browser would post to the redirect URI
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result
    return result["access_token"]


def graph_token(emulators, user_tokens, person=TEST_USER) -> str:
    """A Graph token on-behalf-of the person, exactly as an agent tool would get one (a fresh credential: no cache)."""
    credential = OnBehalfOfCredential(TENANT_ID, CLIENT_ID, client_secret=emulators.client_secret,
                                      user_assertion=user_tokens[person.oid], authority=emulators.entra_server.url,
                                      disable_instance_discovery=True)
    return credential.get_token(GRAPH_SCOPE).token


@pytest.fixture
def ada(emulators, user_tokens) -> str:
    return graph_token(emulators, user_tokens, TEST_USER)


@pytest.fixture
def grace(emulators, user_tokens) -> str:
    return graph_token(emulators, user_tokens, OTHER_USER)


def get(emulators, path_or_url: str, token: str | None, *, headers: dict | None = None,
        params: dict | None = None) -> httpx.Response:
    url = path_or_url if path_or_url.startswith("https://") else f"{emulators.graph_server.url}{path_or_url}"
    sent = {**({"authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    with httpx.Client(verify=context(emulators), timeout=10) as http:
        return http.get(url, headers=sent, params=params)


def all_pages(emulators, path: str, token: str, *, headers=None, params=None, limit: int = 20) -> list[dict]:
    """Follow @odata.nextLink to the end (bounded); returns each page's body."""
    pages, url = [], path
    while url and len(pages) < limit:
        reply = get(emulators, url, token, headers=headers, params=params if not pages else None)
        assert reply.status_code == 200, reply.text
        pages.append(reply.json())
        url = reply.json().get("@odata.nextLink")
    assert url is None, "paging did not end"
    return pages


def window(days_before: int = 1, days_after: int = 8, now: datetime | None = None) -> dict:
    now = now or datetime.now(timezone.utc)
    return {"startDateTime": (now - timedelta(days=days_before)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endDateTime": (now + timedelta(days=days_after)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def graph_error(reply: httpx.Response, status: int, code: str) -> dict:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code, error
    inner = error["innerError"]
    assert inner["request-id"] == reply.headers["request-id"] and inner["client-request-id"]
    datetime.strptime(inner["date"], "%Y-%m-%dT%H:%M:%S")
    return error


# ---- the on-behalf-of Graph token from the Entra emulator ----
def test_on_behalf_of_gives_a_v1_graph_token_with_the_consented_permissions(emulators, ada):
    claims = jwt.decode(ada, options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com" and claims["ver"] == "1.0"
    assert claims["iss"] == f"https://sts.windows.net/{TENANT_ID}/" and claims["tid"] == TENANT_ID
    assert claims["oid"] == TEST_USER.oid and claims["appid"] == CLIENT_ID and "idtyp" not in claims
    assert claims["scp"].split() == list(DEFAULT_GRAPH_CONSENT) == ["User.Read", "Calendars.Read", "People.Read",
                                                                    "User.ReadBasic.All"]
    assert ada in emulators.entra.issued  # covered by the secrets audit like every other token


def test_cognitive_services_on_behalf_of_is_unchanged(emulators, user_tokens):
    credential = OnBehalfOfCredential(TENANT_ID, CLIENT_ID, client_secret=emulators.client_secret,
                                      user_assertion=user_tokens[TEST_USER.oid], authority=emulators.entra_server.url,
                                      disable_instance_discovery=True)
    claims = jwt.decode(credential.get_token(f"{COGNITIVE_SERVICES}/.default").token,
                        options={"verify_signature": False})
    assert claims["aud"] == COGNITIVE_SERVICES and claims["scp"] == "user_impersonation"


def test_on_behalf_of_for_a_graph_permission_nobody_consented_to_is_refused(emulators, user_tokens):
    app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=emulators.client_secret,
                                             authority=f"{emulators.entra_server.url}/{TENANT_ID}",
                                             instance_discovery=False)
    result = app.acquire_token_on_behalf_of(user_tokens[TEST_USER.oid], [f"{GRAPH_RESOURCE}/Mail.Read"])
    assert result["error"] == "invalid_grant" and "AADSTS65001" in result["error_description"], result
    assert result.get("suberror") == "consent_required"
    named = app.acquire_token_on_behalf_of(user_tokens[TEST_USER.oid], [f"{GRAPH_RESOURCE}/User.Read"])
    assert jwt.decode(named["access_token"], options={"verify_signature": False})["scp"] == "User.Read"


# ---- /me and /me/manager ----
def test_me_is_the_signed_in_person_with_graph_headers(emulators, ada):
    reply = get(emulators, "/v1.0/me", ada, headers={"client-request-id": "c0ffee00-0000-4000-8000-000000000001"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json;odata.metadata=minimal")
    assert reply.headers["client-request-id"] == "c0ffee00-0000-4000-8000-000000000001"
    assert reply.headers["request-id"] and reply.headers["request-id"] != reply.headers["client-request-id"]
    me = reply.json()
    assert me["@odata.context"] == f"{emulators.graph_server.url}/v1.0/$metadata#users/$entity"
    assert me["id"] == TEST_USER.oid and me["displayName"] == "Ada Lovelace"
    assert me["userPrincipalName"] == me["mail"] == "ada@contoso.example"
    assert (me["givenName"], me["surname"], me["preferredLanguage"]) == ("Ada", "Lovelace", "en-GB")
    assert me["jobTitle"] == "Principal Engineer" and me["officeLocation"].startswith("London")
    assert set(me) == {"@odata.context", "businessPhones", "displayName", "givenName", "jobTitle", "mail",
                       "mobilePhone", "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}
    plain = get(emulators, "/v1.0/me", ada)
    assert plain.headers["client-request-id"] == plain.headers["request-id"]  # generated when the client sends none


def test_me_with_select_and_case_insensitive_segments(emulators, ada):
    reply = get(emulators, "/v1.0/ME", ada, params={"$select": "displayName,department"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"@odata.context": f"{emulators.graph_server.url}/v1.0/$metadata#users(displayName,"
                                              "department)/$entity",
                            "displayName": "Ada Lovelace", "department": "Analytical Engines"}
    error = graph_error(get(emulators, "/v1.0/me", ada, params={"$select": "shoeSize"}), 400, "BadRequest")
    assert "shoeSize" in error["message"]


def test_manager_of_ada_and_none_for_grace(emulators, ada, grace):
    manager = get(emulators, "/v1.0/me/manager", ada).json()
    assert manager["@odata.type"] == "#microsoft.graph.user" and manager["displayName"] == "Charles Babbage"
    assert manager["@odata.context"].endswith("/v1.0/$metadata#directoryObjects/$entity")
    assert manager["mail"] == "charles@contoso.example" and manager["jobTitle"] == "Head of Engineering"
    error = graph_error(get(emulators, "/v1.0/me/manager", grace), 404, "Request_ResourceNotFound")
    assert error["message"] == ("Resource 'manager' does not exist or one of its queried reference-property objects "
                                "are not present.")
    grace_me = get(emulators, "/v1.0/me", grace).json()
    assert grace_me["id"] == OTHER_USER.oid and grace_me["displayName"] == "Grace Hopper"


# ---- calendarView ----
def test_calendar_view_pages_through_a_week_of_meetings(emulators, ada):
    emulators.graph.now = lambda: FROZEN
    pages = all_pages(emulators, "/v1.0/me/calendarView", ada, params=window(1, 8, FROZEN))
    assert [len(page["value"]) for page in pages] == [10, 5]  # Graph's default page size for events is 10
    assert pages[0]["@odata.context"] == (f"{emulators.graph_server.url}/v1.0/$metadata#users('{TEST_USER.oid}')"
                                          "/calendarView")
    next_link = urlsplit(pages[0]["@odata.nextLink"])
    assert parse_qs(next_link.query)["$skip"] == ["10"] and "startDateTime" in parse_qs(next_link.query)
    events = [event for page in pages for event in page["value"]]
    assert len({e["id"] for e in events}) == 15 and {e["subject"] for e in events} == ADA_SUBJECTS
    starts = [e["start"]["dateTime"] for e in events]
    assert starts == sorted(starts) and all(e["start"]["timeZone"] == "UTC" for e in events)
    review = next(e for e in events if e["subject"] == "Design review")
    assert review["start"] == {"dateTime": "2026-06-16T09:00:00.0000000", "timeZone": "UTC"}  # 10:00 in London
    assert review["end"] == {"dateTime": "2026-06-16T10:00:00.0000000", "timeZone": "UTC"}
    assert review["originalStartTimeZone"] == "GMT Standard Time" and review["isOrganizer"] is True
    assert review["location"]["displayName"] == "Room 3.01 (Analytical Engine)"
    assert review["organizer"] == {"emailAddress": {"name": "Ada Lovelace", "address": "ada@contoso.example"}}
    assert {a["emailAddress"]["name"] for a in review["attendees"]} == {"Charles Babbage", "Alan Turing",
                                                                        "Mary Somerville"}
    assert all(a["type"] == "required" and "status" in a for a in review["attendees"])
    assert review["body"]["contentType"] == "html" and review["type"] == "singleInstance"
    standups = [e for e in events if e["subject"] == "Daily stand-up"]
    assert len(standups) == 7 and len({e["seriesMasterId"] for e in standups}) == 1
    assert all(e["type"] == "occurrence" and e["isOnlineMeeting"] for e in standups)


def test_calendar_view_top_select_and_window(emulators, ada):
    emulators.graph.now = lambda: FROZEN
    params = {**window(1, 8, FROZEN), "$top": "4", "$select": "subject,start,end"}
    pages = all_pages(emulators, "/v1.0/me/calendarView", ada, params=params)
    assert [len(page["value"]) for page in pages] == [4, 4, 4, 3]
    assert all(set(event) == {"@odata.etag", "id", "subject", "start", "end"} for p in pages for event in p["value"])
    # Only meetings overlapping the window: Monday 15 June 2026 in London.
    day = {"startDateTime": "2026-06-15T00:00:00+01:00", "endDateTime": "2026-06-16T00:00:00+01:00"}
    today = get(emulators, "/v1.0/me/calendarview", ada, params=day).json()["value"]
    assert [e["subject"] for e in today] == ["Daily stand-up", "1:1 with Charles", "Difference Engine retrospective"]
    newest_first = get(emulators, "/v1.0/me/calendar/calendarView", ada,
                       params={**day, "$orderby": "start/dateTime desc"}).json()["value"]
    assert [e["subject"] for e in newest_first] == ["Difference Engine retrospective", "1:1 with Charles",
                                                     "Daily stand-up"]


@pytest.mark.parametrize("zone, expected", [
    ("Europe/Paris", "2026-06-16T11:00:00.0000000"),
    ("Europe/London", "2026-06-16T10:00:00.0000000"),
    ("Pacific Standard Time", "2026-06-16T02:00:00.0000000"),  # Windows names work too, as in Outlook
])
def test_calendar_view_honours_the_outlook_timezone_preference(emulators, ada, zone, expected):
    emulators.graph.now = lambda: FROZEN
    reply = get(emulators, "/v1.0/me/calendarView", ada, params={**window(0, 3, FROZEN), "$top": "50"},
                headers={"Prefer": f'outlook.timezone="{zone}"'})
    assert reply.headers["preference-applied"] == f'outlook.timezone="{zone}"'
    review = next(e for e in reply.json()["value"] if e["subject"] == "Design review")
    assert review["start"] == {"dateTime": expected, "timeZone": zone}
    assert all(e["start"]["timeZone"] == e["end"]["timeZone"] == zone for e in reply.json()["value"])


def test_design_review_is_tomorrow_at_ten_in_london_relative_to_now(emulators, ada):
    london = ZoneInfo("Europe/London")
    tomorrow = (datetime.now(london) + timedelta(days=1)).date()
    reply = get(emulators, "/v1.0/me/calendarView", ada, params={**window(1, 3), "$top": "50"},
                headers={"Prefer": 'outlook.timezone="Europe/London", outlook.body-content-type="text"'})
    assert "outlook.body-content-type" in reply.headers["preference-applied"]
    events = reply.json()["value"]
    review = next(e for e in events if e["subject"] == "Design review")
    assert review["start"]["dateTime"] == f"{tomorrow.isoformat()}T10:00:00.0000000"
    assert review["end"]["dateTime"] == f"{tomorrow.isoformat()}T11:00:00.0000000"
    assert review["body"]["contentType"] == "text" and "store and mill" in review["body"]["content"]
    today = (datetime.now(london)).date().isoformat()
    assert any(e["start"]["dateTime"].startswith(today) for e in events)  # meetings today as well


def test_calendar_view_needs_an_iso_8601_window(emulators, ada):
    error = graph_error(get(emulators, "/v1.0/me/calendarView", ada), 400, "ErrorInvalidParameter")
    assert error["message"] == ("This request requires a time window specified by the query string parameters "
                                "StartDateTime and EndDateTime.")
    only_start = get(emulators, "/v1.0/me/calendarView", ada, params={"startDateTime": "2026-06-15T00:00:00Z"})
    graph_error(only_start, 400, "ErrorInvalidParameter")
    bad = get(emulators, "/v1.0/me/calendarView", ada, params={"startDateTime": "tomorrow", "endDateTime": "later"})
    assert "tomorrow" in graph_error(bad, 400, "ErrorInvalidParameter")["message"]
    graph_error(get(emulators, "/v1.0/me/calendarView", ada, params={**window(), "$filter": "x"}), 400, "BadRequest")


def test_each_person_sees_only_their_own_calendar(emulators, ada, grace):
    emulators.graph.now = lambda: FROZEN
    mine = [e for p in all_pages(emulators, "/v1.0/me/calendarView", ada, params=window(1, 8, FROZEN)) for e in p["value"]]
    hers = [e for p in all_pages(emulators, "/v1.0/me/calendarView", grace, params=window(1, 8, FROZEN))
            for e in p["value"]]
    assert {e["subject"] for e in hers} == GRACE_SUBJECTS and {e["subject"] for e in mine} == ADA_SUBJECTS
    assert not {e["id"] for e in mine} & {e["id"] for e in hers}
    assert all("ada@contoso.example" not in json.dumps(e) for e in hers)
    sync = next(e for e in hers if e["subject"] == "Compiler team sync")
    assert sync["start"]["dateTime"] == "2026-06-15T13:00:00.0000000"  # 09:00 in New York
    assert sync["originalStartTimeZone"] == "Eastern Standard Time"


# ---- people and users ----
def test_people_are_ranked_colleagues_searchable_and_paged(emulators, ada, grace):
    reply = get(emulators, "/v1.0/me/people", ada)
    people = reply.json()["value"]
    assert reply.json()["@odata.context"].endswith(f"/v1.0/$metadata#users('{TEST_USER.oid}')/people")
    assert people[0]["displayName"] == "Charles Babbage" and TEST_USER.oid not in {p["id"] for p in people}
    first = people[0]
    assert first["scoredEmailAddresses"][0]["address"] == "charles@contoso.example"
    assert first["personType"] == {"class": "Person", "subclass": "OrganizationUser"}
    alan = get(emulators, "/v1.0/me/people", ada, params={"$search": '"alan"'}).json()["value"]
    assert [p["displayName"] for p in alan] == ["Alan Turing"]
    assert get(emulators, "/v1.0/me/people", grace).json()["value"][0]["displayName"] == "Katherine Johnson"
    pages = all_pages(emulators, "/v1.0/me/people", ada, params={"$top": "3"})
    names = [p["displayName"] for page in pages for p in page["value"]]
    assert len(pages) > 2 and len(names) == len(set(names)) and "Ada Lovelace" not in names


def test_users_search_needs_consistency_level_eventual(emulators, ada):
    params = {"$search": '"displayName:grace"'}
    error = graph_error(get(emulators, "/v1.0/users", ada, params=params), 400, "Request_UnsupportedQuery")
    assert error["message"] == ("Request with $search query parameter only works through MSGraph with a special "
                                "request header: 'ConsistencyLevel: eventual'")
    found = get(emulators, "/v1.0/users", ada, params=params, headers={"ConsistencyLevel": "eventual"}).json()
    assert found["@odata.context"].endswith("/v1.0/$metadata#users")
    assert [u["displayName"] for u in found["value"]] == ["Grace Hopper"] and found["value"][0]["id"] == OTHER_USER.oid
    either = get(emulators, "/v1.0/users", ada, headers={"ConsistencyLevel": "eventual"},
                 params={"$search": '"displayName:ada" OR "displayName:alan"', "$count": "true"}).json()
    assert {u["displayName"] for u in either["value"]} == {"Ada Lovelace", "Alan Turing"} and either["@odata.count"] == 2
    unquoted = get(emulators, "/v1.0/users", ada, params={"$search": "displayName:ada"},
                   headers={"ConsistencyLevel": "eventual"})
    graph_error(unquoted, 400, "Request_UnsupportedQuery")


def test_users_page_with_an_opaque_skiptoken_to_the_end(emulators, ada):
    total = len(emulators.graph.directory)
    pages = all_pages(emulators, "/v1.0/users", ada, params={"$top": "3"})
    ids = [u["id"] for page in pages for u in page["value"]]
    assert len(ids) == len(set(ids)) == total and len(pages) == -(-total // 3)
    assert "$skiptoken=" in pages[0]["@odata.nextLink"]
    error = graph_error(get(emulators, "/v1.0/users", ada, params={"$top": "1000"}), 400, "Request_UnsupportedQuery")
    assert error["message"] == "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    by_upn = get(emulators, "/v1.0/users/grace@contoso.example", ada).json()
    assert by_upn["id"] == OTHER_USER.oid
    graph_error(get(emulators, "/v1.0/users/nobody@contoso.example", ada), 404, "Request_ResourceNotFound")


def test_a_person_without_a_profile_gets_a_plain_one(emulators):
    visitor = TestUser(oid="5c6d7e8f-9012-4a3b-8c4d-5e6f7a8b9c0d", name="Load Person",
                       preferred_username="load-person@contoso.example")
    emulators.graph.add_user(visitor)
    try:
        token = emulators.entra.graph_token(user=visitor, client_id=CLIENT_ID)
        me = get(emulators, "/v1.0/me", token).json()
        assert (me["id"], me["displayName"], me["jobTitle"]) == (visitor.oid, "Load Person", None)
        events = get(emulators, "/v1.0/me/calendarView", token, params=window()).json()["value"]
        assert [e["subject"] for e in events] == ["Team meeting"]
        graph_error(get(emulators, "/v1.0/me/manager", token), 404, "Request_ResourceNotFound")
    finally:
        del emulators.graph.directory[visitor.oid]


# ---- tokens: 401, 400 and 403 as Graph answers them ----
@pytest.mark.parametrize("make_token, message", [
    (lambda e: None, "Access token is empty."),
    (lambda e: "not-a-jwt", "CompactToken parsing failed with error code: 80049217"),
    (lambda e: e.graph_token(user=TEST_USER.oid, client_id=CLIENT_ID, foreign_key=True),
     "Access token validation failure."),
    (lambda e: e.graph_token(user=TEST_USER.oid, client_id=CLIENT_ID, exp=int(time.time()) - 600),
     "Lifetime validation failed, the token is expired."),
    (lambda e: e.cognitive_services_token(user=TEST_USER.oid, client_id=CLIENT_ID),
     "Access token validation failure. Invalid audience."),
    (lambda e: e.graph_token(user=TEST_USER.oid, client_id=CLIENT_ID, scp=None),
     "Either scp or roles claim need to be present in the token."),
], ids=["missing", "malformed", "bad-signature", "expired", "wrong-audience", "no-scp-or-roles"])
def test_bad_tokens_are_401_invalid_authentication_token(emulators, make_token, message):
    reply = get(emulators, "/v1.0/me", make_token(emulators.entra))
    error = graph_error(reply, 401, "InvalidAuthenticationToken")
    assert error["message"] == message
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="", authorization_uri="https://localhost:')
    assert 'client_id="00000003-0000-0000-c000-000000000000"' in challenge


def test_the_graph_application_id_is_an_accepted_audience(emulators):
    token = emulators.entra.graph_token(user=TEST_USER.oid, client_id=CLIENT_ID,
                                        aud="00000003-0000-0000-c000-000000000000")
    assert get(emulators, "/v1.0/me", token).status_code == 200


def test_app_only_tokens_have_no_me_and_need_application_permissions(emulators):
    app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=emulators.client_secret,
                                             authority=f"{emulators.entra_server.url}/{TENANT_ID}",
                                             instance_discovery=False)
    # The app registration has no Graph application permissions: its token has neither roles nor scp.
    no_roles = app.acquire_token_for_client([GRAPH_SCOPE])["access_token"]
    error = graph_error(get(emulators, "/v1.0/me", no_roles), 401, "InvalidAuthenticationToken")
    assert error["message"] == "Either scp or roles claim need to be present in the token."
    with_role = emulators.entra.graph_token(client_id=CLIENT_ID, roles=["User.Read.All"])
    error = graph_error(get(emulators, "/v1.0/me", with_role), 400, "BadRequest")
    assert error["message"] == "/me request is only valid with delegated authentication flow."
    graph_error(get(emulators, "/v1.0/me/calendarView", with_role, params=window()), 400, "BadRequest")
    assert get(emulators, "/v1.0/users", with_role).status_code == 200
    other_role = emulators.entra.graph_token(client_id=CLIENT_ID, roles=["Mail.Read"])
    denied = graph_error(get(emulators, "/v1.0/users", other_role), 403, "Authorization_RequestDenied")
    assert denied["message"] == "Insufficient privileges to complete the operation."


@pytest.mark.parametrize("withdrawn, path, params, code", [
    ("Calendars.Read", "/v1.0/me/calendarView", window(), "ErrorAccessDenied"),
    ("People.Read", "/v1.0/me/people", None, "ErrorAccessDenied"),
    ("User.ReadBasic.All", "/v1.0/me/manager", None, "Authorization_RequestDenied"),
    ("User.ReadBasic.All", "/v1.0/users", None, "Authorization_RequestDenied"),
])
def test_a_withdrawn_permission_is_403_from_graph(emulators, user_tokens, withdrawn, path, params, code):
    emulators.entra.set_graph_consent(CLIENT_ID, [s for s in DEFAULT_GRAPH_CONSENT if s != withdrawn])
    token = graph_token(emulators, user_tokens)
    assert withdrawn not in jwt.decode(token, options={"verify_signature": False})["scp"].split()
    graph_error(get(emulators, path, token, params=params), 403, code)
    assert get(emulators, "/v1.0/me", token).status_code == 200  # User.Read is still consented


def test_user_read_alone_is_enough_for_me_only(emulators):
    token = emulators.entra.graph_token(user=TEST_USER.oid, client_id=CLIENT_ID, scp="User.Read")
    assert get(emulators, "/v1.0/me", token).status_code == 200
    graph_error(get(emulators, "/v1.0/me/manager", token), 403, "Authorization_RequestDenied")
    graph_error(get(emulators, "/v1.0/me/calendarView", token, params=window()), 403, "ErrorAccessDenied")
    no_user_read = emulators.entra.graph_token(user=TEST_USER.oid, client_id=CLIENT_ID, scp="Calendars.Read")
    graph_error(get(emulators, "/v1.0/me", no_user_read), 403, "Authorization_RequestDenied")


# ---- faults ----
def test_injected_429_has_retry_after_and_graphs_body_then_calls_succeed(emulators, ada):
    emulators.graph.inject("429", count=1, retry_after=2)
    reply = get(emulators, "/v1.0/me", ada)
    error = graph_error(reply, 429, "TooManyRequests")
    assert reply.headers["retry-after"] == "2" and error["message"] == "Please retry again later."
    assert error["innerError"]["status"] == "429" and error["innerError"]["message"] == "Please retry after"
    assert get(emulators, "/v1.0/me", ada).status_code == 200
    assert [r["fault"] for r in emulators.graph.requests] == ["429", None]


def test_injected_503_for_one_path_only(emulators, ada):
    emulators.graph.inject("503", retry_after=3, path="/v1.0/users")
    assert get(emulators, "/v1.0/me", ada).status_code == 200  # not that path: the fault waits
    reply = get(emulators, "/v1.0/users", ada)
    graph_error(reply, 503, "ServiceNotAvailable")
    assert reply.headers["retry-after"] == "3"
    assert get(emulators, "/v1.0/users", ada).status_code == 200


def test_faults_over_http_like_the_azure_openai_emulator(emulators, ada):
    base = f"{emulators.graph_server.url}/_emulator/faults"
    with httpx.Client(verify=context(emulators), timeout=10) as http:
        state = http.post(base, json={"fault": "429", "count": 2, "retry_after": 5}).json()
        assert [f["kind"] for f in state["queued"]] == ["429", "429"]
        assert http.post(base, json={"fault": "teapot"}).status_code == 400
        assert http.delete(base).json()["queued"] == []
    assert get(emulators, "/v1.0/me", ada).status_code == 200


# ---- the request record, errors for unknown paths ----
def test_requests_are_recorded_without_the_token(emulators, ada):
    get(emulators, "/v1.0/users", ada, params={"$search": '"displayName:ada"'},
        headers={"ConsistencyLevel": "eventual", "client-request-id": "rec-1"})
    record = emulators.graph.requests[-1]
    assert (record["method"], record["path"], record["status"]) == ("GET", "/v1.0/users", 200)
    assert record["query"] == {"$search": '"displayName:ada"'} and record["headers"]["consistencylevel"] == "eventual"
    assert "authorization" not in record["headers"] and record["headers"]["client-request-id"] == "rec-1"
    claims = record["token_claims"]
    assert claims["oid"] == TEST_USER.oid and claims["aud"] == "https://graph.microsoft.com"
    assert "Calendars.Read" in claims["scp"].split()
    assert ada not in json.dumps(emulators.graph.requests)
    get(emulators, "/v1.0/me", None)
    assert emulators.graph.requests[-1]["status"] == 401 and emulators.graph.requests[-1]["token_claims"] is None


def test_unknown_segments_and_methods_are_graph_errors(emulators, ada):
    error = graph_error(get(emulators, "/v1.0/me/calender", ada), 400, "BadRequest")
    assert error["message"] == "Resource not found for the segment 'calender'."
    graph_error(get(emulators, "/v2.0/me", ada), 400, "BadRequest")
    with httpx.Client(verify=context(emulators), timeout=10) as http:
        posted = http.post(f"{emulators.graph_server.url}/v1.0/me", headers={"authorization": f"Bearer {ada}"})
    graph_error(posted, 405, "Request_BadRequest")


# ---- the local stack's wiring ----
def test_the_app_gets_the_graph_endpoint_and_settings_still_load(emulators, settings, stack_env):
    assert app_environment(emulators.config, emulators)["GRAPH_ENDPOINT"] == emulators.graph_server.url
    assert stack_env["GRAPH_ENDPOINT"].startswith("https://localhost:")
    assert settings.app.public_url  # load_settings() accepted the environment with GRAPH_ENDPOINT in it
