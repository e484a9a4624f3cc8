"""Conformance with today's Azure rules: every catalog deployment × every chain × {chat, summary, agent, side by side,
judge, image} goes through the product's real model factory and turn engine to the in-process Azure OpenAI emulator,
which applies each model family's Chat Completions rules (refused parameters, efforts, reasoning tokens, image
billing) as Azure does.

Printed per deployment: calls made, requests refused (HTTP 400 from the emulator; target 0), the image estimate shown
before sending ÷ the image tokens the emulator billed (target 1.00), and for reasoning deployments the share of billed
output that was hidden reasoning.
"""
from __future__ import annotations

import io
import logging
import os
import sys
import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.result import result

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

TURNS = 4  # with APP_MEMORY_TRIGGER_MESSAGES 7, the fourth turn of a conversation is summarised first
QUESTION = "What should a new colleague know about our travel policy"


def png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "seagreen").save(buffer, "PNG")
    return buffer.getvalue()


def main() -> int:
    from auth.credentials import app_token_provider
    from auth.security_context import SecurityContext
    from callbacks.audit import AuditLog
    from chains.registry import REGISTRY, get_chain
    from config import load_settings
    from config.database import database_engine
    from engine import Asker, Choices, NewMessage, SideBySide, TurnEngine, Upload
    from experiments.dataset import Item, Message
    from experiments.judge import build_judge_model, judge_audit_handler, judge_messages
    from localdev.engines import ScriptedEngine
    from localdev.stack import TENANT_ID, TEST_USER, StackConfig, app_environment, start_emulators
    from memory.conversation import Conversation
    from memory.store import ConversationStore, Owner
    from store.files import FileStore

    work = Path(tempfile.mkdtemp(prefix="bench-conformance-"))
    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=work / "data", engine="scripted")
    emulators = start_emulators(config)
    rows: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    refused: list[str] = []
    try:
        emulators.aoai.engine = ScriptedEngine()  # unpaced: pacing changes no rule
        for name in list(os.environ):
            if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_")):
                del os.environ[name]
        os.environ.update(app_environment(config, emulators))
        settings = load_settings(env_file=None)
        provider = app_token_provider(settings.entra)
        who = Asker(Owner(TEST_USER.oid, TENANT_ID), SecurityContext(settings.app.name, TEST_USER.oid, TENANT_ID,
                                                                     "127.0.0.1"),
                    "bench-session", token_provider=lambda: provider, roles=frozenset(TEST_USER.roles))
        quiet = logging.getLogger("bench.conformance.audit")
        quiet.propagate, quiet.disabled = False, True
        records: list[dict] = []
        audit = AuditLog(quiet, [records.append])
        store = ConversationStore(database_engine(None, work / "data", "conversations.db"),
                                  FileStore(work / "data" / "images"))
        engine = TurnEngine(settings, store, audit)
        catalog = settings.catalog

        def note(deployment: str, context: str, seen_requests: int, seen_records: int) -> None:
            """Counts the calls since the marks, and the ones the emulator refused (400), by context."""
            calls = [r for r in records[seen_records:] if r.get("event") == "model_call"]
            for record in calls:
                row = rows[record.get("deployment") or deployment]  # a side by side's other side is its own row
                row["calls"] += 1
                row["completion"] += record.get("completion_tokens") or 0
                row["reasoning"] += record.get("reasoning_tokens") or 0
                if record.get("status_code") == 400:
                    row["refused"] += 1
                    refused.append(f"{record.get('deployment')} {context} {record.get('purpose')}: "
                                   f"{record.get('error_code')} {record.get('error_param')}")
                row[f"context:{context}"] += 1

        def turns(deployment, chain: str, messages: list[NewMessage], context: str) -> None:
            conversation = Conversation()
            choices = Choices(deployment, get_chain(chain), deployment.answer_limit(settings.app.default_max_output_tokens),
                              settings.app.default_temperature)
            for message in messages:
                marks = len(emulators.aoai.requests), len(records)
                list(engine.run(who, conversation, message, choices))
                note(deployment.name, context, *marks)

        for deployment in catalog.deployments:
            for chain in REGISTRY:
                context = "agent" if get_chain(chain).uses_tools else "chat"
                turns(deployment, chain, [NewMessage(f"{QUESTION} (turn {n + 1})?") for n in range(TURNS)],
                      f"{context}+summary")
            other = next(d for d in catalog.deployments if d.name != deployment.name)
            marks = len(emulators.aoai.requests), len(records)
            list(SideBySide(engine).run(who, Conversation(), NewMessage(QUESTION + "?"),
                                        Choices(deployment, get_chain("assistant"), 2000, 0.7),
                                        Choices(other, get_chain("concise"), 2000, 0.7)))
            note(deployment.name, "side_by_side", *marks)
            marks = len(emulators.aoai.requests), len(records)
            handler = judge_audit_handler(audit, deployment, owner_oid=TEST_USER.oid, tenant_id=TENANT_ID,
                                          session="bench-session")
            judge = build_judge_model(settings, deployment, provider, handler, security_context=who.security_context.as_payload())
            item = Item(id="q1", messages=(Message("user", QUESTION + "?"),), line=1)
            try:
                judge.invoke(judge_messages(item, "Book through the portal.", "Ask your manager."))
            except Exception:  # noqa: BLE001 - a refusal is counted from its audit record
                pass
            note(deployment.name, "judge", *marks)
            if deployment.accepts_images:
                ratios = []
                for width, height, detail in ((1024, 768, "high"), (300, 200, "auto"), (4000, 3000, "high"),
                                              (800, 3000, "low")):
                    choices = Choices(deployment, get_chain("assistant"), 2000, 0.7, image_detail=detail)
                    marks = len(emulators.aoai.requests), len(records)
                    events = list(engine.run(who, Conversation(), NewMessage(
                        "What is on this picture?", [Upload("picture.png", png(width, height))]), choices))
                    note(deployment.name, "image", *marks)
                    attachments = [a for e in events if type(e).__name__ == "Accepted" for a in e.turn.attachments]
                    estimate = sum(a["tokens"] for a in attachments)
                    billed = sum(r.get("image_tokens") or 0 for r in emulators.aoai.requests[marks[0]:]
                                 if r.get("kind") == "chat")
                    ratios.append(estimate / billed if billed else float("nan"))
                rows[deployment.name]["image_ratios"] = ratios
    finally:
        emulators.stop()

    print("| deployment | reasoning | calls | refused (400) | calls by context | image estimate ÷ billed | "
          "reasoning share of billed output |")
    print("|---|---|---:|---:|---|---|---:|")
    worst_image, total_refused = None, 0
    for deployment in catalog.deployments:
        row = rows[deployment.name]
        contexts = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in row.items() if str(k).startswith("context:"))
        ratios = row.get("image_ratios") or []
        images = " / ".join(f"{r:.2f}" for r in ratios) if ratios else "no images"
        for ratio in ratios:
            gap = abs(ratio - 1)
            worst_image = gap if worst_image is None or not gap <= worst_image else worst_image
        share = (f"{Decimal(row['reasoning']) / Decimal(row['completion']):.0%}" if deployment.reasoning
                 and row["completion"] else "—")
        total_refused += row["refused"]
        print(f"| {deployment.name} | {'yes' if deployment.reasoning else 'no'} | {row['calls']} | {row['refused']} | "
              f"{contexts} | {images} | {share} |")
    for line in refused[:20]:
        print(f"refused: {line}")
    result("conformance: requests refused by the emulator's 2026 rules", total_refused, "= 0", total_refused == 0)
    worst = 1 + (worst_image or 0)
    result("conformance: image estimate ÷ billed, worst", worst, "= 1.00", worst_image == 0)
    return 0 if total_refused == 0 and worst_image == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
