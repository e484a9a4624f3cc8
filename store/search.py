"""Full-text search over a person's conversations (titles and messages), ranked by the database itself: an FTS5
table on SQLite (porter stemming, bm25), a `tsvector` column with a GIN index on Postgres (english configuration,
ts_rank_cd). Any other database gets an unranked LIKE search.

The store keeps the index in step with the conversations inside its own transactions: a turn's two messages are indexed
with the turn, a rename changes the indexed title, a delete removes the rows. Every row carries its owner (oid and
tenant) and every search filters on it, and again on the conversation's owner: another person's words never match.

A query is a list of words and "quoted phrases", matched after stemming (so "migrating" finds "migration") and
without English stop words. Conversations holding every word in their title or one message come first, ranked; when
fewer than asked for hold them all, conversations holding any of them follow, ranked. User text is never passed to a
query parser as syntax: words are quoted one by one for FTS5, and each becomes its own websearch_to_tsquery on
Postgres. The result is one hit per conversation: its best-matching message, with a snippet whose matched words sit
between MARK_START and MARK_END (plain text otherwise: escape it before showing it as markdown or HTML).

The work of one search is bounded however many messages a person has: each word (or, for "every word", the whole
query) ranks only the person's CANDIDATES newest matching messages. A word in most messages is therefore ranked among
the newest of them, while a rarer word's matches are all ranked, old or new. The index finds the person's rows itself:
a per-person key token in the FTS5 table, an (owner, position) index next to the GIN index on Postgres.

The tables, triggers and indexes are made by the schema migrations (config/migrations/conversations, revision 0001),
which also fill the index from the stored messages of a database from before search; this module only reads and
writes them.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

MARK_START, MARK_END = "\ue000", "\ue001"  # around matched words in a snippet (private-use characters)
SNIPPET_WORDS = 18
MAX_TERMS = 12  # words and phrases of a query beyond these are ignored
MAX_QUERY_CHARACTERS = 500
CANDIDATES = 1_000  # per query word: the person's newest matching messages that are ranked
INDEXED_CHARACTERS = 100_000  # of one message: a huge paste must not make a turn fail (Postgres caps a tsvector at 1 MB)
TITLE_WEIGHT = 10.0  # bm25 weight of the title against 1.0 for the message (SQLite); Postgres weighs A 1.0 vs B 0.4

# Postgres' english stop words (snowball): SQLite drops them from queries too, so both databases match alike.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself it
its itself they them their theirs themselves what which who whom this that these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down in out on off over under again further
then once here there when where why how all any both each few more most other some such no nor not only own same so
than too very s t can will just don should now
""".split())

_PHRASE = re.compile(r'"([^"]*)"')
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what both tokenizers keep


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    title: str
    message_id: str  # the conversation's best-matching message
    snippet: str  # plain text with MARK_START/MARK_END around matched words
    score: float  # higher is better; comparable within one search only
    updated_at: datetime


@dataclass(frozen=True)
class Query:
    terms: tuple[str, ...] = ()  # single words, lower case, no stop words
    phrases: tuple[str, ...] = ()  # quoted phrases, their words joined by spaces

    @property
    def empty(self) -> bool:
        return not self.terms and not self.phrases

    @property
    def parts(self) -> int:
        return len(self.terms) + len(self.phrases)


def parse_query(text: str | None) -> Query:
    """Words and "quoted phrases" of what the person typed; everything else (operators, brackets, stars, a lone
    quote) is only a separator. Duplicates and stop words go; an empty Query matches nothing."""
    text = (text or "")[:MAX_QUERY_CHARACTERS]
    phrases: list[str] = []
    for match in _PHRASE.finditer(text):
        words = _WORD.findall(match.group(1).lower())
        if len(words) > 1:
            phrases.append(" ".join(words))
        elif words and words[0] not in STOP_WORDS:  # a quoted single word is just a word
            phrases.append(words[0])
    terms = [w for w in _WORD.findall(_PHRASE.sub(" ", text).lower()) if w not in STOP_WORDS]
    parts = list(dict.fromkeys([*phrases, *terms]))[:MAX_TERMS]
    return Query(terms=tuple(p for p in parts if " " not in p), phrases=tuple(p for p in parts if " " in p))


def snippet_parts(snippet: str) -> list[tuple[str, bool]]:
    """A snippet as (text, matched) pieces, for whoever draws it."""
    pieces, rest = [], snippet
    while rest:
        start = rest.find(MARK_START)
        if start < 0:
            pieces.append((rest, False))
            break
        end = rest.find(MARK_END, start)
        end = len(rest) if end < 0 else end
        if start:
            pieces.append((rest[:start], False))
        pieces.append((rest[start + 1:end], True))
        rest = rest[end + 1:]
    return [(piece, matched) for piece, matched in pieces if piece]


def _clip(content: str) -> str:
    return content[:INDEXED_CHARACTERS]


class SearchIndex:
    """The operations the store calls, each inside the store's own transaction (`db`)."""

    def add(self, db: Session, conversation_id: str, owner_oid: str, owner_tenant: str, title: str,
            messages: Iterable[tuple[str, str]]) -> None:
        """Index (message id, content) pairs of one conversation; empty messages are skipped."""

    def replace_content(self, db: Session, conversation_id: str, message_id: str, content: str) -> None:
        """A stored message's text changed (the answer kept from a side-by-side comparison)."""

    def retitle(self, db: Session, owner_oid: str, owner_tenant: str, conversation_id: str, title: str) -> None:
        pass

    def remove(self, db: Session, conversation_id: str) -> None:
        pass

    def search(self, db: Session, owner_oid: str, owner_tenant: str, query: Query, limit: int) -> list[SearchHit]:
        """Conversations with every word first, then (to fill `limit`) those with any of them."""
        if query.empty or limit <= 0:
            return []
        owner = {"oid": owner_oid, "tenant": owner_tenant}
        hits = self._ranked(db, owner, query, every=True, limit=limit)
        if len(hits) < limit and query.parts > 1:
            found = {hit.conversation_id for hit in hits}
            more = self._ranked(db, owner, query, every=False, limit=limit + len(found))
            hits += [hit for hit in more if hit.conversation_id not in found][:limit - len(hits)]
        return hits

    def _ranked(self, db: Session, owner: dict, query: Query, every: bool, limit: int) -> list[SearchHit]:
        raise NotImplementedError


# -- SQLite: FTS5 over an external content table -----------------------------------------------------------------------

def owner_key(owner_oid: str, owner_tenant: str) -> str:
    """One token standing for a person in the FTS5 index (digits after a letter: no tokenizer or stemmer changes it),
    so that the index itself returns only that person's rows, newest first."""
    digest = hashlib.sha256(f"{owner_oid}\n{owner_tenant}".encode()).digest()
    return "o" + str(int.from_bytes(digest[:12], "big"))


def _fts5_string(words: str) -> str:
    return '"' + words.replace('"', '""') + '"'  # a quoted string: FTS5 reads only words in it, never operators


def fts5_query(query: Query, every: bool) -> str:
    """The person's words for FTS5 MATCH: each quoted, joined by AND or OR (the owner's key is added separately)."""
    return (" AND " if every else " OR ").join(_fts5_string(part) for part in (*query.phrases, *query.terms))


class Fts5Index(SearchIndex):
    """The rows (one per message, with its conversation's owner and title) in a plain table, search_documents, and the
    FTS5 index conversation_search over their title, content and owner key, kept in step by triggers. A plain table
    holds the rows so that a rename or a delete finds them through an ordinary index on conversation_id; its rowid
    order is the order messages were indexed."""

    def add(self, db, conversation_id, owner_oid, owner_tenant, title, messages) -> None:
        key = owner_key(owner_oid, owner_tenant)
        rows = [{"message": message_id, "conversation": conversation_id, "oid": owner_oid, "tenant": owner_tenant,
                 "key": key, "title": title or "", "content": _clip(content)} for message_id, content in messages
                if content]
        if rows:
            db.execute(text("INSERT INTO search_documents (message_id, conversation_id, owner_oid, owner_tenant, "
                            "owner_key, title, content) VALUES (:message, :conversation, :oid, :tenant, :key, :title, "
                            ":content)"), rows)

    def replace_content(self, db, conversation_id, message_id, content) -> None:
        db.execute(text("UPDATE search_documents SET content = :content WHERE message_id = :message "
                        "AND conversation_id = :conversation"),
                   {"content": _clip(content), "message": message_id, "conversation": conversation_id})

    def retitle(self, db, owner_oid, owner_tenant, conversation_id, title) -> None:
        db.execute(text("UPDATE search_documents SET title = :title WHERE conversation_id = :conversation "
                        "AND owner_oid = :oid AND owner_tenant = :tenant"),
                   {"title": title, "conversation": conversation_id, "oid": owner_oid, "tenant": owner_tenant})

    def remove(self, db, conversation_id) -> None:
        db.execute(text("DELETE FROM search_documents WHERE conversation_id = :conversation"),
                   {"conversation": conversation_id})

    def _ranked(self, db, owner, query, every, limit) -> list[SearchHit]:
        mine = f"owner_key : {_fts5_string(owner_key(owner['oid'], owner['tenant']))} AND {{title content}} : "
        parts = [fts5_query(query, True)] if every else [_fts5_string(p) for p in (*query.phrases, *query.terms)]
        values = {f"match{n}": f"{mine}({part})" for n, part in enumerate(parts)}
        # Each window: the person's newest matching messages, at most CANDIDATES, with their bm25 (lower is better;
        # the owner column weighs nothing). Any-word windows are summed per message: bm25 adds up over terms.
        windows = " UNION ALL ".join(
            f"SELECT * FROM (SELECT rowid AS document, bm25(conversation_search, {TITLE_WEIGHT}, 1.0, 0.0) AS rank "
            f"FROM conversation_search WHERE conversation_search MATCH :match{n} ORDER BY rowid DESC "
            f"LIMIT :candidates)" for n in range(len(parts)))
        # Then the best message of each conversation (a bare column next to MIN() comes from the row holding the
        # minimum) and the conversation's current title and time from its own row, owner checked again.
        best = db.execute(text(f"""
            WITH hits AS MATERIALIZED ({windows}),
            scored AS (SELECT document, SUM(rank) AS rank FROM hits GROUP BY document),
            best AS (
                SELECT d.conversation_id AS conversation_id, d.id AS document, d.message_id AS message_id,
                       MIN(scored.rank) AS rank
                FROM scored JOIN search_documents d ON d.id = scored.document
                WHERE d.owner_oid = :oid AND d.owner_tenant = :tenant
                GROUP BY d.conversation_id)
            SELECT best.conversation_id, best.document, best.message_id, best.rank, c.title, c.updated_at
            FROM best JOIN conversations c ON c.id = best.conversation_id
            WHERE c.owner_oid = :oid AND c.owner_tenant = :tenant
            ORDER BY best.rank, c.updated_at DESC, c.id
            LIMIT :limit""").columns(conversation_id=String, document=Integer, message_id=String, rank=Float,
                                      title=String, updated_at=DateTime(timezone=True)),
            {**values, **owner, "candidates": CANDIDATES, "limit": limit}).all()
        if not best:
            return []
        snippets = dict(db.execute(text(f"""
            SELECT rowid, snippet(conversation_search, 1, :start, :end, '…', {SNIPPET_WORDS})
            FROM conversation_search WHERE conversation_search MATCH :match AND rowid IN :rows""").bindparams(
            bindparam("rows", expanding=True)),
            {"match": f"{mine}({fts5_query(query, False)})", "start": MARK_START, "end": MARK_END,
             "rows": [r.document for r in best]}).all())
        return [SearchHit(r.conversation_id, r.title or "New conversation", r.message_id,
                          snippets.get(r.document, ""), -r.rank, r.updated_at) for r in best]


# -- Postgres: a stored tsvector with a GIN index ----------------------------------------------------------------------

def _postgres_table(metadata: MetaData) -> Table:
    """The table as the index writes it (the migrations create it; tests/unit/test_migrations.py compares the two)."""
    from sqlalchemy import Computed, Identity
    from sqlalchemy.dialects.postgresql import TSVECTOR

    return Table(
        "message_search", metadata,
        Column("message_id", String(36), primary_key=True),
        Column("position", BigInteger, Identity(), nullable=False),  # the order messages were indexed in
        Column("conversation_id", String(36), nullable=False, index=True),
        Column("owner_oid", String(64), nullable=False),
        Column("owner_tenant", String(64), nullable=False),
        Column("title", Text, nullable=False, server_default=""),
        Column("content", Text, nullable=False),
        Column("document", TSVECTOR, Computed(
            "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
            "setweight(to_tsvector('english', content), 'B')", persisted=True)),
        # fastupdate off: a turn's two rows go straight into the index, so a search never reads a pending list.
        Index("ix_message_search_document", "document", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
        # The person's newest messages first: where a word is in most of them, reading in this order finds enough
        # matches sooner than the GIN index would list them all (the planner chooses from the word's statistics).
        Index("ix_message_search_owner_position", "owner_oid", "owner_tenant", "position"),
    )


_HEADLINE = (f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={SNIPPET_WORDS}, MinWords=6, ShortWord=2, '
             'MaxFragments=1, FragmentDelimiter=" … "')


def _postgres_parts(query: Query) -> tuple[list[str], dict]:
    parts, values = [], {}
    for n, phrase in enumerate(query.phrases):
        parts.append(f"phraseto_tsquery('english', :phrase{n})")
        values[f"phrase{n}"] = phrase
    for n, term in enumerate(query.terms):
        parts.append(f"websearch_to_tsquery('english', :term{n})")
        values[f"term{n}"] = term
    return parts, values


class PostgresIndex(SearchIndex):
    def __init__(self) -> None:
        self._metadata = MetaData()
        self._table = _postgres_table(self._metadata)

    def add(self, db, conversation_id, owner_oid, owner_tenant, title, messages) -> None:
        rows = [{"message_id": message_id, "conversation_id": conversation_id, "owner_oid": owner_oid,
                 "owner_tenant": owner_tenant, "title": title or "", "content": _clip(content)}
                for message_id, content in messages if content]
        if rows:
            db.execute(self._table.insert(), rows)

    def replace_content(self, db, conversation_id, message_id, content) -> None:
        t = self._table
        db.execute(t.update().where(t.c.message_id == message_id, t.c.conversation_id == conversation_id)
                   .values(content=_clip(content)))

    def retitle(self, db, owner_oid, owner_tenant, conversation_id, title) -> None:
        t = self._table
        db.execute(t.update().where(t.c.conversation_id == conversation_id, t.c.owner_oid == owner_oid,
                                    t.c.owner_tenant == owner_tenant).values(title=title))

    def remove(self, db, conversation_id) -> None:
        db.execute(self._table.delete().where(self._table.c.conversation_id == conversation_id))

    def _ranked(self, db, owner, query, every, limit) -> list[SearchHit]:
        parts, values = _postgres_parts(query)
        queries = [" && ".join(parts)] if every else parts
        # Each window: the person's newest matching messages, at most CANDIDATES, ranked after the cut (ts_rank_cd,
        # normalisation 1: divided by 1 + log(length), so a long answer does not win by length alone). Any-word
        # windows are summed per message. The headline (costly) is made for the returned rows only.
        windows = " UNION ALL ".join(f"""
            SELECT w.message_id, w.conversation_id, ts_rank_cd(w.document, {q}, 1) AS score FROM (
                SELECT s.message_id, s.conversation_id, s.document FROM message_search s
                WHERE s.owner_oid = :oid AND s.owner_tenant = :tenant AND s.document @@ ({q})
                ORDER BY s.position DESC LIMIT :candidates) w""" for q in queries)
        rows = db.execute(text(f"""
            WITH hits AS ({windows}),
            scored AS (SELECT message_id, conversation_id, SUM(score) AS score FROM hits
                       GROUP BY message_id, conversation_id),
            best AS (SELECT DISTINCT ON (conversation_id) conversation_id, message_id, score FROM scored
                     ORDER BY conversation_id, score DESC, message_id),
            top AS (
                SELECT best.conversation_id, best.message_id, best.score, c.title, c.updated_at
                FROM best JOIN conversations c ON c.id = best.conversation_id
                WHERE c.owner_oid = :oid AND c.owner_tenant = :tenant
                ORDER BY best.score DESC, c.updated_at DESC, c.id
                LIMIT :limit)
            SELECT top.conversation_id, top.message_id, top.score, top.title, top.updated_at,
                   ts_headline('english', s.content, {" || ".join(parts)}, :headline) AS snippet
            FROM top JOIN message_search s ON s.message_id = top.message_id
            ORDER BY top.score DESC, top.updated_at DESC, top.conversation_id""").columns(
            conversation_id=String, message_id=String, score=Float, title=String, updated_at=DateTime(timezone=True),
            snippet=Text),
            {**values, **owner, "candidates": CANDIDATES, "limit": limit, "headline": _HEADLINE}).all()
        return [SearchHit(r.conversation_id, r.title or "New conversation", r.message_id, r.snippet or "",
                          float(r.score), r.updated_at) for r in rows]


# -- anything else: LIKE over the stored messages, unranked --------------------------------------------------------------

class LikeIndex(SearchIndex):
    """No index to keep: each search reads the person's messages with LIKE (newest conversations first)."""

    def _ranked(self, db, owner, query, every, limit) -> list[SearchHit]:
        words = [*query.phrases, *query.terms]
        conditions, values = [], {}
        for n, word in enumerate(words):
            values[f"w{n}"] = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(f"(lower(m.content) LIKE :w{n} ESCAPE '\\' OR lower(c.title) LIKE :w{n} ESCAPE '\\')")
        rows = db.execute(text(f"""
            SELECT c.id AS conversation_id, c.title, c.updated_at, m.id AS message_id, m.content
            FROM conversations c JOIN messages m ON m.conversation_id = c.id
            WHERE c.owner_oid = :oid AND c.owner_tenant = :tenant AND ({(' AND ' if every else ' OR ').join(conditions)})
            ORDER BY c.updated_at DESC, c.id, m.seq""").columns(updated_at=DateTime(timezone=True)),
            {**values, **owner}).all()
        hits: dict[str, SearchHit] = {}
        for r in rows:
            if r.conversation_id not in hits and len(hits) < limit:
                hits[r.conversation_id] = SearchHit(r.conversation_id, r.title or "New conversation", r.message_id,
                                                    _like_snippet(r.content, words), 0.0, r.updated_at)
        return list(hits.values())


def _like_snippet(content: str, words: list[str]) -> str:
    lower = content.lower()
    at = min((i for i in (lower.find(w) for w in words) if i >= 0), default=0)
    start = max(0, at - 60)
    return ("…" if start else "") + content[start:start + 160] + ("…" if start + 160 < len(content) else "")


def search_index(engine: Engine) -> SearchIndex:
    """The index of this database, as the migrations made it: FTS5 on SQLite (LIKE where that SQLite had no FTS5),
    a tsvector on Postgres, LIKE on anything else."""
    if engine.dialect.name == "postgresql":
        return PostgresIndex()
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            if connection.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'conversation_search'").first():
                return Fts5Index()
    return LikeIndex()
