"""Searching conversations by title and content on SQLite's FTS5 (the same functions run on Postgres in
tests/integration/test_search_postgres.py): indexed with each turn, renamed and deleted with the conversation, never
another person's, safe with any query text, ranked (200 generated conversations, 20 paraphrased queries: the expected
conversation in the top 3), and an existing database indexed on first start."""
from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy import text

from config.database import database_engine
from memory.conversation import Conversation, Turn
from memory.store import ConversationStore, Owner, answer_record
from store.comparisons import Comparison
from store.search import MARK_END, MARK_START, parse_query, snippet_parts
from tests.unit.test_migrations import made_before_migrations

ADA, GRACE = Owner("ada-oid", "tenant-1"), Owner("grace-oid", "tenant-1")
ADA_ELSEWHERE = Owner("ada-oid", "tenant-2")

# -- a generated set of conversations: 20 subjects × 10 aspects, each pair one conversation ------------------------------

SUBJECTS = [  # (as the conversation says it, as a query says it: another inflection where porter stems both alike)
    ("penguin colony", "penguins colonies"), ("sourdough starter", "sourdough starters"),
    ("kubernetes cluster", "kubernetes clusters"), ("wedding reception", "wedding receptions"),
    ("vegetable garden", "vegetables gardening"), ("electric bicycle", "electric bicycles"),
    ("violin lessons", "violin lesson"), ("chess tournament", "chess tournaments"),
    ("beekeeping hives", "beekeeping hive"), ("solar panels", "solar panel"),
    ("aquarium fish", "aquariums fishes"), ("mountain cabin", "mountain cabins"),
    ("podcast episodes", "podcast episode"), ("vintage motorcycle", "vintage motorcycles"),
    ("pottery studio", "pottery studios"), ("telescope observatory", "telescopes observatory"),
    ("sailing yacht", "sail yacht"), ("orchid greenhouse", "orchids greenhouses"),
    ("drone fleet", "drones fleet"), ("ramen restaurant", "ramen restaurants"),
]
ASPECTS = {  # question (becomes the title), a sentence of the answer, how a query phrases it
    "budget": ("Can you help me budget for the {s} next year?",
               "A realistic budget for the {s} lists fixed costs first, then a reserve for surprises.",
               "budgeting money {q}"),
    "migration": ("We are migrating the {s} to a new place, what could go wrong?",
                  "When migrating the {s}, move in stages and keep the old setup until the new one works.",
                  "{q} migration problems"),
    "security": ("How do I review the security of the {s}?",
                 "For the security of the {s}, list who has access and check the weakest entry point.",
                 "secure {q} access"),
    "schedule": ("I need a weekly schedule for the {s}.",
                 "A weekly schedule for the {s} works best with fixed slots and one free afternoon.",
                 "scheduling the {q} week"),
    "insurance": ("Which insurance do I need for the {s}?",
                  "Insurance for the {s} should cover theft, damage and liability to visitors.",
                  "insured {q} liability"),
    "photography": ("Tips for photographing the {s} at dusk?",
                    "Photographing the {s} at dusk needs a tripod and a slow shutter.",
                    "{q} photographs dusk"),
    "translation": ("Please translate the {s} brochure into Spanish.",
                    "Here is the {s} brochure translated into Spanish, with the terms kept consistent.",
                    "translation of {q} brochures"),
    "negotiation": ("How should I negotiate the price of the {s}?",
                    "To negotiate the {s} price, anchor with a fair offer and know your walk-away point.",
                    "negotiating {q} prices"),
    "recycling": ("What parts of the {s} can be recycled?",
                  "Most metal and glass from the {s} can be recycled; batteries go to a special point.",
                  "recycling {q} batteries"),
    "inspection": ("What does an inspection of the {s} involve?",
                   "An inspection of the {s} checks the structure, the wiring and the records.",
                   "inspecting the {q} wiring"),
}
FILLER = ["Thanks, that helps.", "Could you make it shorter?", "Here is a shorter version with the main steps.",
          "Let me know if you want more detail.", "Good point, I had not thought of that.",
          "Can you put that in a list?", "Sure, here it is as a list.", "What would you do first?"]


def generated_conversations(seed: int = 7) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(subject, aspect, turns) for every subject × aspect, in a shuffled order: each conversation's answers also
    mention another subject and another aspect in passing, so that words are shared and ranking matters."""
    rng = random.Random(seed)
    subjects, aspects = [s for s, _ in SUBJECTS], list(ASPECTS)
    pairs = [(s, a) for s in subjects for a in aspects]
    rng.shuffle(pairs)
    conversations = []
    for subject, aspect in pairs:
        question, sentence, _ = ASPECTS[aspect]
        other_subject = rng.choice([s for s in subjects if s != subject])
        other_aspect = rng.choice([a for a in aspects if a != aspect])
        aside = ASPECTS[other_aspect][1].format(s=other_subject)
        turns = [(question.format(s=subject),
                  f"{sentence.format(s=subject)} {rng.choice(FILLER)} As an aside, from another case: {aside}"),
                 (rng.choice(FILLER), f"{rng.choice(FILLER)} For the {subject.split()[0]}, start small."),
                 (rng.choice(FILLER), rng.choice(FILLER))]
        conversations.append((subject, aspect, turns))
    return conversations


def ranking_queries() -> list[tuple[str, tuple[str, str]]]:
    """20 queries (each subject once, each aspect twice), phrased with other word forms and extra words than the
    conversation they should find."""
    aspects = list(ASPECTS)
    return [(ASPECTS[aspects[n % len(aspects)]][2].format(q=SUBJECTS[n][1]), (SUBJECTS[n][0], aspects[n % len(aspects)]))
            for n in range(len(SUBJECTS))]


def commit(store: ConversationStore, owner: Owner, turns: list[tuple[str, str]],
           conversation: Conversation | None = None) -> Conversation:
    conversation = conversation or Conversation()
    for question, answer in turns:
        store.commit_turn(owner, conversation, conversation.add(Turn("user", question)),
                          conversation.add(Turn("assistant", answer, deployment="gpt-4o", chain="assistant@1")))
    return conversation


def run_ranking_contract(store: ConversationStore) -> None:
    ids = {}
    for subject, aspect, turns in generated_conversations():
        ids[(subject, aspect)] = commit(store, ADA, turns).id
    # Grace has a copy of every conversation a query should find: it must never appear in Ada's results.
    graces = {commit(store, GRACE, next(t for s, a, t in generated_conversations() if (s, a) == expected)).id
              for _, expected in ranking_queries()}
    placed = []
    for query, expected in ranking_queries():
        hits = store.search(ADA, query, limit=10)
        assert not graces & {hit.conversation_id for hit in hits}
        found = [hit.conversation_id for hit in hits]
        placed.append((query, found.index(ids[expected]) + 1 if ids[expected] in found else None))
    missed = [(query, place) for query, place in placed if place is None or place > 3]
    assert not missed, f"expected conversation not in the top 3: {missed}"


def run_search_contract(make_store) -> None:
    store = make_store()
    adas = commit(store, ADA, [("How do I rotate a client secret in Entra ID?",
                                "Create a new secret, deploy it, then delete the old one."),
                               ("And the certificates?", "Certificates are uploaded the same way; rotating them "
                                                         "before expiry avoids an outage.")])
    graces = commit(store, GRACE, [("How do I rotate a client secret in Entra ID?",
                                    "Create a new secret, deploy it, then delete the old one.")])

    again = make_store()  # a restart finds the index as it was
    (hit,) = again.search(ADA, "rotating secrets")
    assert (hit.conversation_id, hit.title) == (adas.id, "How do I rotate a client secret in Entra ID?")
    assert hit.message_id in {t.id for t in adas.turns} and hit.updated_at is not None
    # The best message of the conversation is the one that opens: here the answer about certificates.
    (hit,) = again.search(ADA, "certificate outages")
    assert hit.message_id == adas.turns[3].id
    assert MARK_START + "outage" + MARK_END in hit.snippet and "Certificates" in hit.snippet
    assert ("outage", True) in snippet_parts(hit.snippet)

    # Indexed with each turn: a new turn's words are found at once.
    commit(again, ADA, [("What about a managed identity instead?", "A managed identity has no secret to rotate.")],
           adas)
    (hit,) = again.search(ADA, "managed identities")
    assert hit.message_id in (adas.turns[4].id, adas.turns[5].id)

    # Another person's conversation with the same words never appears, whoever searches.
    assert [h.conversation_id for h in again.search(GRACE, "secret")] == [graces.id]
    assert again.search(ADA_ELSEWHERE, "secret") == [] and again.search(Owner("nobody", "tenant-1"), "secret") == []
    assert again.rename(GRACE, adas.id, "stolen") is False and again.search(GRACE, "stolen") == []

    # A rename changes what the title search finds; the old title's words only match where messages have them.
    assert again.rename(ADA, adas.id, "Zeppelin maintenance")
    (hit,) = again.search(ADA, "zeppelins")
    assert hit.title == "Zeppelin maintenance" and hit.conversation_id == adas.id
    assert [h.conversation_id for h in again.search(GRACE, "zeppelin")] == []

    # Query text is never search syntax: operators, quotes, stars and brackets neither fail nor change the meaning.
    for query in ['"', "*", "AND", "(", ")", "NOT", "OR", "NEAR(", "secret AND (", '"unbalanced secret', "secret*",
                  "title:secret", "^secret", "-secret", "secret:*", "!secret & | <->", "'; DROP TABLE messages; --",
                  "\\", "%_%", "{secret}", "secret" * 300, "🙂 секрет", "x" * 5000, " ".join(["rotate"] * 50)]:
        hits = again.search(ADA, query)
        assert isinstance(hits, list), query
        assert graces.id not in {h.conversation_id for h in hits}, query
    assert [h.conversation_id for h in again.search(ADA, "secret AND (")] == [adas.id]
    assert [h.conversation_id for h in again.search(ADA, '"unbalanced secret')] == [adas.id]
    for empty in ("", "   ", None, "the and of", '""', "()*"):
        assert again.search(ADA, empty) == []
    # A quoted phrase needs its words together.
    assert [h.conversation_id for h in again.search(ADA, '"client secret"')] == [adas.id]
    assert again.search(ADA, '"secret client"') == []

    # Every word matching comes first; conversations with only some of them follow.
    other = commit(again, ADA, [("Planning a trip to Iceland", "Pack layers; the weather changes fast.")])
    found = [h.conversation_id for h in again.search(ADA, "rotate secret iceland weather")]
    assert set(found) == {adas.id, other.id}

    # Deleted with the conversation.
    assert again.delete(ADA, adas.id)
    assert again.search(ADA, "secret") == [] and again.search(ADA, "zeppelin") == []
    assert [h.conversation_id for h in again.search(GRACE, "secret")] == [graces.id]


def run_kept_answer_contract(store: ConversationStore) -> None:
    """A side-by-side vote that keeps the other answer: the search finds the kept answer's words, not the replaced."""
    conversation = Conversation()
    user = conversation.add(Turn("user", "Name a bird"))
    first = conversation.add(Turn("assistant", "A flamingo.", deployment="gpt-4o", chain="assistant@1"))
    second = Turn("assistant", "A cormorant.", deployment="gpt-4o-mini", chain="concise@1", id=str(uuid.uuid4()))
    comparison = Comparison(str(uuid.uuid4()), conversation.id, first.id, "assistant@1", "gpt-4o", "concise@1",
                            "gpt-4o-mini", answer_record(first), answer_record(second), None)
    store.commit_turn(ADA, conversation, user, first, comparison=comparison)
    assert [h.message_id for h in store.search(ADA, "flamingo")] == [first.id]
    assert store.record_vote(ADA, conversation, comparison, "b", second)
    assert store.search(ADA, "flamingo") == []
    assert [h.message_id for h in store.search(ADA, "cormorants")] == [first.id]  # the stored message keeps its id


def run_backfill_contract(engine, drop_index: list[str]) -> None:
    """A database from before search (conversations, no search table; made before migrations too): the first start
    indexes every message once (the baseline migration, config/migrations)."""
    store = ConversationStore(engine)
    first = commit(store, ADA, [("Old question about glaciers", "Glaciers retreat in warm summers.")])
    commit(store, GRACE, [("Grace's glaciers", "Also glaciers.")])
    assert store.rename(ADA, first.id, "Ice renamed")
    made_before_migrations(engine)
    with engine.begin() as db:
        for statement in drop_index:
            db.execute(text(statement))
    restarted = ConversationStore(engine)
    (hit,) = restarted.search(ADA, "glacier retreating")
    assert (hit.conversation_id, hit.title, hit.message_id) == (first.id, "Ice renamed", first.turns[1].id)
    assert [h.conversation_id for h in restarted.search(ADA, "renamed")] == [first.id]
    assert len(restarted.search(GRACE, "glaciers")) == 1
    ConversationStore(engine)  # a second start does not index anything twice
    commit(restarted, ADA, [("And icebergs?", "Icebergs calve from glaciers.")], first)
    (hit,) = ConversationStore(engine).search(ADA, "glaciers")
    assert hit.conversation_id == first.id


def run_candidates_contract(store: ConversationStore, monkeypatch) -> None:
    """A word in most of the person's messages ranks only their newest matches (a bounded amount of work), and a rare
    word in an old conversation is still found next to it."""
    from store import search as search_index

    monkeypatch.setattr(search_index, "CANDIDATES", 4)
    conversations = [commit(store, ADA, [(f"Descale the kettle, attempt {n}" + (" with the samovar" if n == 0 else ""),
                                          "Use vinegar.")]) for n in range(10)]
    commit(store, GRACE, [("kettle", "kettle")])
    newest = {c.id for c in conversations[-2:]}  # 4 messages: the title is in both of each conversation's messages
    hits = store.search(ADA, "kettles")
    assert hits and {h.conversation_id for h in hits} <= newest
    hits = store.search(ADA, "kettle samovar")  # the one with every word first, then the newest with some
    assert hits[0].conversation_id == conversations[0].id and {h.conversation_id for h in hits[1:]} <= newest
    assert [h.conversation_id for h in store.search(ADA, "kettle samovar", limit=1)] == [conversations[0].id]
    hits = store.search(ADA, "kettle samovars unheardofword")  # no message has all three: any of them
    assert {h.conversation_id for h in hits} == newest | {conversations[0].id}


SQLITE_DROP = ["DROP TABLE conversation_search", "DROP TABLE search_documents"]


@pytest.fixture
def make_store(tmp_path):
    return lambda: ConversationStore(database_engine(None, tmp_path, "conversations.db"))


def test_search_contract_on_sqlite(make_store):
    run_search_contract(make_store)


def test_ranking_of_200_generated_conversations_on_sqlite(make_store):
    run_ranking_contract(make_store())


def test_a_kept_side_by_side_answer_is_what_is_found_on_sqlite(make_store):
    run_kept_answer_contract(make_store())


def test_common_words_rank_the_newest_matches_and_rare_ones_are_found_on_sqlite(make_store, monkeypatch):
    run_candidates_contract(make_store(), monkeypatch)


def test_an_existing_database_is_indexed_on_first_start_on_sqlite(tmp_path):
    run_backfill_contract(database_engine(None, tmp_path, "conversations.db"), SQLITE_DROP)


def test_a_turn_that_fails_leaves_no_search_row(make_store):
    store = make_store()
    conversation = commit(store, ADA, [("first about narwhals", "an answer")])
    user, reply = conversation.add(Turn("user", "second about walruses")), conversation.add(Turn("assistant", "x"))
    reply.id = conversation.turns[0].id  # a duplicate key: the whole turn is refused
    with pytest.raises(Exception):
        store.commit_turn(ADA, conversation, user, reply)
    assert store.search(ADA, "walruses") == [] and len(store.search(ADA, "narwhals")) == 1


def test_parse_query_keeps_words_and_phrases_only():
    assert parse_query('Rotate the "client secret" AND (NOT certs*) "') .terms == ("rotate", "certs")
    assert parse_query('Rotate the "client secret"').phrases == ("client secret",)
    assert parse_query('"the"').empty and parse_query("**").empty and parse_query(None).empty
    assert parse_query('"Secret" secret').terms == ("secret",)
    assert len(parse_query(" ".join(f"w{n}" for n in range(40))).terms) == 12
    assert parse_query("interns_2026").terms == ("interns", "2026")


def test_snippet_parts():
    assert snippet_parts(f"a {MARK_START}b{MARK_END} c") == [("a ", False), ("b", True), (" c", False)]
    assert snippet_parts(f"{MARK_START}open") == [("open", True)]
    assert snippet_parts("") == []


def _sidebar_page(data_dir: str) -> None:
    """The sidebar's conversation list and a plain drawing of the open conversation, as the page draws them."""
    from pathlib import Path

    import streamlit as st

    from config.database import database_engine
    from memory.store import ConversationStore, Owner
    from ui.conversations import conversation_list, current_conversation, search_match_marker
    from ui.turn_view import visible_turns

    store = ConversationStore(database_engine(None, Path(data_dir), "conversations.db"))
    conversation = current_conversation()
    for turn in visible_turns(conversation.turns, conversation.id):
        with st.chat_message(turn.role):
            st.markdown(turn.content)
            search_match_marker(turn)
    with st.sidebar:
        conversation_list(store, Owner("ada-oid", "tenant-1"))


def test_the_sidebar_search_opens_a_conversation_at_its_matching_message(tmp_path):
    from streamlit.testing.v1 import AppTest

    store = ConversationStore(database_engine(None, tmp_path, "conversations.db"))
    long = Conversation()
    commit(store, ADA, [(f"question {n}", "We looked at the *zeppelin* hangar [plans](http://x)." if n == 3
                         else f"answer {n}") for n in range(60)], long)
    match = long.turns[7]
    commit(store, ADA, [("Interns get a 100% raise", "ok")])
    commit(store, GRACE, [("zeppelin", "Grace's zeppelin hangar")])

    at = AppTest.from_function(_sidebar_page, args=(str(tmp_path),), default_timeout=30)
    at.run()
    assert len([b for b in at.sidebar.button if b.key.startswith("open-")]) == 2
    at.sidebar.text_input(key="conversation_search").set_value("zeppelins hangars").run()
    assert not at.exception, at.exception
    (found,) = [b for b in at.sidebar.button if b.key.startswith("open-")]  # never Grace's
    assert found.key == f"open-{long.id}"
    snippet = next(c.value for c in at.sidebar.caption if "hangar" in c.value)
    assert "**zeppelin**" in snippet and "\\[plans\\]" in snippet and "\\*" in snippet  # escaped, match in bold
    found.click().run()
    assert not at.exception, at.exception
    # The matching message is drawn (60 turns are 120 messages: it is beyond the newest 50) and marked.
    assert at.session_state["focus_message"] == match.id and at.session_state[f"shown-{long.id}"] == 150
    assert any("zeppelin" in m.value for m in at.markdown)
    assert [c.value for c in at.caption if "Search match" in c.value]
    assert any("message 8 of 120" in c.value for c in at.sidebar.caption)
    # Title text the full-text search ignores ("100%") is still found by the title.
    at.sidebar.text_input(key="conversation_search").set_value("100%").run()
    assert [b.label for b in at.sidebar.button if b.key.startswith("open-")] == ["Interns get a 100% raise"]
    at.sidebar.text_input(key="conversation_search").set_value("no such words anywhere").run()
    assert not [b for b in at.sidebar.button if b.key.startswith("open-")]
    assert any("No conversation matches" in c.value for c in at.sidebar.caption)


def test_other_databases_search_with_like_and_stay_private(make_store):
    """The fallback for a database without full-text search (and a SQLite built without FTS5): unranked, by words
    as typed, never another person's."""
    from store.search import LikeIndex

    store = make_store()
    store._search = LikeIndex()
    adas = commit(store, ADA, [("Rotating a client secret", "Create the new secret first (100% safe).")])
    commit(store, GRACE, [("Rotating a client secret", "Grace's copy")])
    (hit,) = store.search(ADA, "client SECRET")
    assert (hit.conversation_id, hit.message_id) == (adas.id, adas.turns[0].id)
    assert [h.message_id for h in store.search(ADA, "100% new")] == [adas.turns[1].id]
    for query in ['"', "%", "_", "\\", "(", "secret AND ("]:
        assert {h.conversation_id for h in store.search(ADA, query)} <= {adas.id}
