"""A person's data on request: one conversation as Markdown (to read) or JSON (everything stored), all of it as one ZIP,
and the deletion of all of it.

Pure functions over the conversation store (no Streamlit here). What is exported is what is stored: the page's own
objects are reloaded from the store by the caller, so an export never shows something that was not kept.

Deleting goes through `ConversationStore.delete`, conversation by conversation, so files and document indexes are
cleaned exactly as when a person deletes one conversation (a file another conversation still uses is kept), then the
person's sign-in sessions end. The audit log, the usage records (tokens and cost per model call, no text) and
side-by-side votes (their answers' text erased) are the organisation's records and stay.
"""
from __future__ import annotations

import base64
import binascii
import copy
import csv
import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Protocol

from memory.conversation import Conversation, Turn, Usage, Version
from memory.documents import AttachedDocument, Passage
from memory.store import ConversationStore, Owner
from memory.summary import is_summary, summary_text
from store.files import MIME, REFERENCE, FileStore
from store.usage import UsageLedger, to_usd

SCHEMA = "entra-chat/conversation"
SCHEMA_VERSION = 1
ARCHIVE_SCHEMA = "entra-chat/my-data"
EMBEDDED = "embedded"  # the key an image attachment's data goes under when images are embedded
MISSING = "file_missing"  # set instead when the image's file is gone
USAGE_COLUMNS = ("id", "at", "day", "month", "oid", "tenant", "deployment", "chain", "purpose", "outcome",
                 "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_nanousd", "cost_usd",
                 "conversation_id")


class _Sessions(Protocol):
    def delete_all_of(self, oid: str, tenant_id: str) -> int: ...


# -- one conversation --------------------------------------------------------------------------------------------------
def usage_line(turn: Turn) -> str:
    """The line the page shows under an answer: deployment · chain · tokens · cost (same wording as the page)."""
    usage = turn.usage or Usage()
    about = "≈" if usage.estimated else ""
    text = (f"{turn.deployment} · {turn.chain or 'assistant'} · {about}{usage.prompt_tokens} prompt + "
            f"{about}{usage.completion_tokens} completion tokens{_reasoning(usage)} · ${usage.cost_usd:.6f}")
    if usage.model_calls > 1:
        text += f" · {usage.model_calls} model calls"
    if usage.embedding_tokens:
        text += f" · {usage.embedding_tokens} embedding tokens (documents)"
    if usage.estimated:
        text += " (estimated with tiktoken)"
    if turn.status == "stopped":
        text += " · stopped"
    return text


def _reasoning(usage: Usage) -> str:
    """", 880 of them reasoning": how many completion tokens were hidden reasoning (billed as output all the same)."""
    return f", {usage.reasoning_tokens} of them reasoning" if usage.reasoning_tokens > 0 else ""


def conversation_markdown(conversation: Conversation) -> str:
    """The conversation to read: title, then each message (who, text, attached image and document names), each
    answer with its sources, notices and usage line."""
    lines = [f"# {_one_line(conversation.title) or 'New conversation'}", ""]
    lines += [f"Conversation `{conversation.id}` · {len(conversation.turns)} messages", ""]
    for turn in conversation.turns:
        lines += [f"## {'You' if turn.role == 'user' else 'Assistant'}", ""]
        if turn.steps:
            lines += ["*Steps: " + ", ".join(_step_name(s) for s in turn.steps) + "*", ""]
        for thinking in (s for s in turn.steps if s.get("kind") == "thinking" and s.get("output")):
            # The model's summary of its reasoning, quoted apart from the answer.
            lines += ["> **Thinking** (the model's summary of its reasoning)", ">"]
            lines += [f"> {line}" if line else ">" for line in str(thinking["output"]).splitlines()] + [""]
        if turn.content:
            lines += [turn.content, ""]
        images = [a for a in turn.attachments if a.get("kind", "image") == "image"]
        documents = [a for a in turn.attachments if a.get("kind") == "document"]
        if images:
            lines += ["Images: " + ", ".join(_image_name(a) for a in images), ""]
        if documents:
            lines += ["Documents: " + ", ".join(_one_line(a.get("name") or "") for a in documents), ""]
        if turn.sources:
            lines += ["Sources:", ""]
            lines += [f"- [{s.get('n')}] {s.get('file', '')}" + (f" · {s['where']}" if s.get("where") else "")
                      for s in turn.sources]
            lines.append("")
        if turn.excluded:
            lines += ["> Blocked by the content filter: not sent to the model again.", ""]
        if turn.notice:
            lines += [f"> {turn.status.capitalize()}: {_one_line(turn.notice)}"
                      if turn.status != "complete" else f"> {_one_line(turn.notice)}", ""]
        if turn.usage:
            lines += [f"*{usage_line(turn)}*", ""]
        if turn.role == "assistant" and turn.feedback is not None:
            lines += [f"Your feedback: {'👍' if turn.feedback else '👎'}", ""]
        others = [v for v in turn.versions if not v.active]
        if others:
            lines += [f"*Answer {turn.version_in_use} of {len(turn.versions)}; the others:*", ""]
            for version in others:
                lines += [f"> **Version {version.n}.** You: {_one_line(version.question)}", ">"]
                lines += [f"> {line}" for line in (version.answer.content or "(no answer)").splitlines()]
                lines += [f"> *{usage_line(version.answer)}*" if version.answer.usage else ">", ""]
    if conversation.documents:
        lines += ["## Documents in this conversation", ""]
        lines += [f"- {_one_line(d.describe())}" for d in conversation.documents]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def conversation_json(conversation: Conversation, files: FileStore | None, embed_images: bool = False, *,
                      updated_at: datetime | None = None) -> dict:
    """Everything stored about the conversation, JSON-ready: every message with its usage, steps, sources and
    attachments (images as their `stored:` reference; with `embed_images`, also their data in base64 with its MIME
    type), the documents (and their passages' text when loaded), the memory's summary, the settings."""
    remembered = [m.id for m in conversation.memory if m.id and not is_summary(m)]
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "id": conversation.id,
        "title": conversation.title,
        "updated_at": _iso(updated_at),
        "settings": _jsonable(dict(conversation.settings)),
        "memory": {"summary": summary_text(conversation.memory), "remembered_message_ids": remembered},
        "totals": usage_json(conversation.totals()),
        "turns": [_turn_json(turn, files, embed_images) for turn in conversation.turns],
        "documents": [_document_json(document) for document in conversation.documents],
    }


def conversation_from_json(data: dict) -> Conversation:
    """A conversation read back from `conversation_json` (embedded image data left out; the memory is not rebuilt:
    only its summary text is exported)."""
    if data.get("schema") != SCHEMA or data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"not a {SCHEMA} version {SCHEMA_VERSION} export")
    turns = [_turn_from_json(t) for t in data["turns"]]
    documents = [AttachedDocument(
        name=d["name"], kind=d["kind"], ref=d["ref"], mode=d["mode"], tokens=d["tokens"], pages=d["pages"],
        embedding_deployment=d["embedding_deployment"], embedding_tokens=d["embedding_tokens"],
        embedding_cost=Decimal(d["embedding_cost"]), passage_count=d["passage_count"], message_id=d["message_id"],
        passages=[Passage(p["seq"], p["label"], p["text"], p["tokens"]) for p in d.get("passages") or []], id=d["id"])
        for d in data["documents"]]
    return Conversation(turns=turns, id=data["id"], title=data["title"], settings=dict(data["settings"]),
                        persisted=True, documents=documents)


def _turn_from_json(t: dict) -> Turn:
    return Turn(role=t["role"], content=t["content"], deployment=t["deployment"], chain=t["chain"],
                usage=usage_from_json(t["usage"]), status=t["status"], notice=t["notice"], excluded=t["excluded"],
                feedback=t["feedback"], attachments=[_stored_attachment(a) for a in t["attachments"]],
                steps=list(t["steps"]), sources=list(t["sources"]), id=t["id"],
                versions=[Version(v["n"], v["question"], _turn_from_json(v["answer"]), v["excluded"], active=v["active"])
                          for v in t.get("versions") or ()])


def usage_json(usage: Usage | None) -> dict | None:
    if usage is None:
        return None
    return {**usage.as_json(), "cost_usd": _money(usage.cost_usd)}


def usage_from_json(data: dict | None) -> Usage | None:
    if not data:
        return None
    return Usage.from_json(data)


def _turn_json(turn: Turn, files: FileStore | None, embed_images: bool) -> dict:
    return {"id": turn.id, "role": turn.role, "content": turn.content, "status": turn.status, "notice": turn.notice,
            "excluded": turn.excluded, "feedback": turn.feedback, "deployment": turn.deployment, "chain": turn.chain,
            "usage": usage_json(turn.usage),
            "attachments": [_attachment_json(a, files, embed_images) for a in turn.attachments],
            "steps": _jsonable(copy.deepcopy(turn.steps)), "sources": _jsonable(copy.deepcopy(turn.sources)),
            "versions": [{"n": v.n, "question": v.question, "excluded": v.excluded, "active": v.active,
                          "answer": _turn_json(v.answer, files, embed_images)} for v in turn.versions]}


def _attachment_json(attachment: dict, files: FileStore | None, embed_images: bool) -> dict:
    exported = _jsonable(copy.deepcopy(attachment))
    if not embed_images or attachment.get("kind", "image") != "image":
        return exported
    match = REFERENCE.match(attachment.get("ref") or "")
    data = files.load(attachment["ref"]) if files is not None and match else None
    if data is None:
        exported[MISSING] = True
    else:
        exported[EMBEDDED] = {"mime_type": MIME.get(match.group(2), "application/octet-stream"),
                              "base64": base64.b64encode(data).decode("ascii")}
    return exported


def _stored_attachment(exported: dict) -> dict:
    return {k: v for k, v in exported.items() if k not in (EMBEDDED, MISSING)}


def _document_json(document: AttachedDocument) -> dict:
    return {"id": document.id, "name": document.name, "kind": document.kind, "ref": document.ref,
            "mode": document.mode, "tokens": document.tokens, "pages": document.pages,
            "embedding_deployment": document.embedding_deployment, "embedding_tokens": document.embedding_tokens,
            "embedding_cost": _money(document.embedding_cost), "passage_count": document.passage_count,
            "message_id": document.message_id, "description": document.describe(),
            "passages": [{"seq": p.seq, "label": p.label, "text": p.text, "tokens": p.tokens}
                         for p in document.passages]}


# -- everything of one person ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MyData:
    """The ZIP of everything, and what is in it (counts only: what an audit record may say)."""

    data: bytes
    counts: dict = field(default_factory=dict)


def export_all(store: ConversationStore, ledger: UsageLedger | None, owner: Owner, files: FileStore | None,
               embed_images: bool = False, *, now: datetime | None = None) -> MyData:
    """One ZIP with every conversation of the person (`conversations/<id>.json` and `.md`), their feedback
    (`feedback.json`: thumbs on answers and side-by-side votes), their usage rows (`usage.csv`, from the usage
    `ledger`; none without one) and a `manifest.json`. Everything through the stores' own APIs."""
    now = now or datetime.now(timezone.utc)
    buffer = io.BytesIO()
    listed, thumbs, messages, images = [], [], 0, 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for summary in store.list(owner):
            conversation = store.load(owner, summary.id)
            if conversation is None:  # deleted meanwhile (another tab)
                continue
            store.load_passages(conversation, conversation.documents)
            exported = conversation_json(conversation, files, embed_images, updated_at=summary.updated_at)
            archive.writestr(f"conversations/{conversation.id}.json", _dumps(exported))
            archive.writestr(f"conversations/{conversation.id}.md", conversation_markdown(conversation))
            listed.append({"id": conversation.id, "title": conversation.title, "updated_at": _iso(summary.updated_at),
                           "messages": len(conversation.turns), "json": f"conversations/{conversation.id}.json",
                           "markdown": f"conversations/{conversation.id}.md"})
            messages += len(conversation.turns)
            images += sum(1 for t in conversation.turns for a in t.attachments if a.get("kind", "image") == "image")
            thumbs += [{"conversation_id": conversation.id, "conversation_title": conversation.title,
                        "message_id": t.id, "score": t.feedback, "thumbs": "up" if t.feedback else "down",
                        "chain": t.chain, "deployment": t.deployment}
                       for t in conversation.turns if t.feedback is not None]
        usage = [{**row, "cost_usd": _money(to_usd(row["cost_nanousd"]))}
                 for row in (ledger.rows_of(owner.oid, owner.tenant_id) if ledger is not None else [])]
        votes = [_jsonable(row) for row in store.comparisons_of(owner)]
        archive.writestr("feedback.json", _dumps({"thumbs": thumbs, "side_by_side_votes": votes}))
        archive.writestr("usage.csv", _usage_csv(usage))
        counts = {"conversations": len(listed), "messages": messages, "images": images, "feedback": len(thumbs),
                  "votes": len(votes), "usage_rows": len(usage)}
        archive.writestr("manifest.json", _dumps({
            "schema": ARCHIVE_SCHEMA, "schema_version": SCHEMA_VERSION, "exported_at": _iso(now),
            "person": {"oid": owner.oid, "tenant_id": owner.tenant_id}, "images_embedded": embed_images,
            "counts": counts, "conversations": listed,
            "files": {"feedback": "feedback.json", "usage": "usage.csv"},
            "kept_elsewhere": "The audit log is the organisation's record and is not part of this export."}))
    return MyData(buffer.getvalue(), counts)


def _usage_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=USAGE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _iso(v) if isinstance(v, (datetime, date)) else v for k, v in row.items()})
    return out.getvalue()


# -- deleting everything of one person ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeletedData:
    conversations: int = 0
    messages: int = 0
    documents: int = 0
    files: int = 0  # stored files removed (a file another conversation still uses is kept)
    sessions: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def delete_all_my_data(store: ConversationStore, sessions: _Sessions | None, owner: Owner) -> DeletedData:
    """Every conversation of the person through `store.delete` (messages, steps, sources, documents and their
    passages, comparisons' answer text, unshared files), then every sign-in session of the person. Audit records,
    usage records and votes stay. Conversations stored meanwhile by another tab are deleted too."""
    conversations = messages = documents = 0
    candidates: set[str] = set()
    present: set[str] = set()
    done: set[str] = set()
    while batch := [s for s in store.list(owner, limit=100) if s.id not in done]:
        for summary in batch:
            done.add(summary.id)
            conversation = store.load(owner, summary.id)
            if conversation is None:
                continue
            references = _file_references(conversation)
            present |= {r for r in references - candidates if _file_exists(store.files, r)}
            candidates |= references
            if store.delete(owner, summary.id):
                conversations += 1
                messages += len(conversation.turns)
                documents += len(conversation.documents)
    removed = sum(1 for reference in present if not _file_exists(store.files, reference))
    ended = sessions.delete_all_of(owner.oid, owner.tenant_id) if sessions is not None else 0
    return DeletedData(conversations, messages, documents, removed, ended)


def _file_references(conversation: Conversation) -> set[str]:
    """The `stored:` files a conversation uses: attachments, documents, and images in its memory (which `load`
    hands back as data URLs: their reference is the hash of their bytes, as `FileStore.save_data_url` made it)."""
    references = {a["ref"] for t in conversation.turns for a in t.attachments if a.get("ref")}
    references |= {d.ref for d in conversation.documents}
    for message in conversation.memory:
        for block in message.content if isinstance(message.content, list) else ():
            if not (isinstance(block, dict) and block.get("type") == "image_url"):
                continue
            url = (block.get("image_url") or {}).get("url", "")
            if url.startswith("stored:"):
                references.add(url)
            elif url.startswith("data:"):
                header, _, payload = url.partition(",")
                try:
                    data = base64.b64decode(payload, validate=True)
                except (ValueError, binascii.Error):
                    continue
                extension = "png" if header.startswith("data:image/png") else "jpg"
                references.add(f"stored:{hashlib.sha256(data).hexdigest()}.{extension}")
    return {r for r in references if REFERENCE.match(r)}


def _file_exists(files: FileStore | None, reference: str) -> bool:
    match = REFERENCE.match(reference)
    return bool(files is not None and match and (files.folder / f"{match.group(1)}.{match.group(2)}").exists())


# -- small helpers -----------------------------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _step_name(step: dict) -> str:
    name = step.get("name") or step.get("kind") or "step"
    return f"{name} ({step['kind']})" if step.get("kind") and step.get("kind") != name else str(name)


def _image_name(attachment: dict) -> str:
    name = _one_line(attachment.get("name") or "image")
    details = []
    if attachment.get("width") and attachment.get("height"):
        details.append(f"{attachment['width']}×{attachment['height']}")
    if attachment.get("detail"):
        details.append(f"{attachment['detail']} detail")
    if attachment.get("tokens") is not None:
        details.append(f"{attachment['tokens']} tokens")
    return f"{name} ({', '.join(details)})" if details else name


def _money(value: Decimal) -> str:
    """Dollars as plain decimals (0.0000006, not 6E-7): exact, and readable in a spreadsheet."""
    return format(Decimal(value), "f")


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime) and value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _jsonable(value: Any) -> Any:
    """Stored JSON as it is; datetimes, dates and decimals (from SQL rows) as strings."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return _iso(value)
    if isinstance(value, Decimal):
        return _money(value)
    return value


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)
