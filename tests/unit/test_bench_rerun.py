"""The rerun benchmark's audit log is what the app would have left: every line a record, rotated like the app's
RotatingFileHandler (no file over the limit, the oldest beyond the backups gone, oldest file first in time), and each
record has exactly the fields the audit handler and the page's feedback vote write."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from bench.rerun import audit_records, rotation_limits, write_audit_log
from callbacks.audit import AUDIT_LOGGER, AuditContext, AuditHandler, AuditLog
from config.catalog import load_catalog
from localdev import LOCAL_CATALOG_FILE

END = datetime(2025, 6, 30, tzinfo=timezone.utc)


def _records(files) -> list[dict]:
    return [json.loads(line) for path in files for line in path.read_text(encoding="utf-8").splitlines()]


def test_records_spread_over_rotated_files_within_the_size_limit_in_time_order(tmp_path):
    files = write_audit_log(tmp_path / "audit", 2_000, max_bytes=100_000, backups=50, end=END)
    expected = list(audit_records(2_000, end=END))
    assert [p.name for p in files][-1] == "audit.jsonl" and files[0].name == f"audit.jsonl.{len(files) - 1}"
    assert len(files) > 5 and all(p.stat().st_size < 100_000 for p in files)
    records = _records(files)
    assert len(records) == len(expected) and sum(r["event"] == "model_call" for r in records) == 2_000
    assert 0 < sum(r["event"] == "feedback" for r in records) < 200
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)
    assert [r["run_id"] for r in records if "run_id" in r] == [r["run_id"] for r in expected if "run_id" in r]


def test_only_the_backups_survive_like_the_handler_leaves_them(tmp_path):
    everything = _records(write_audit_log(tmp_path / "all", 2_000, max_bytes=100_000, backups=50, end=END))
    files = write_audit_log(tmp_path / "audit", 2_000, max_bytes=100_000, backups=3, end=END)
    assert [p.name for p in files] == ["audit.jsonl.3", "audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]
    kept = _records(files)
    assert kept == everything[-len(kept):]  # the newest records, the oldest rotated away


def test_the_default_rotation_is_the_apps():
    assert rotation_limits() == (10 * 1024 * 1024, 10)


def test_records_have_the_fields_the_app_writes():
    context = AuditContext("oid", "tid", "10.0.0.1", "0123456789abcdef", "c-1", "assistant@1", "gpt-4o", "app",
                           max_output_tokens=1000, temperature=0.7)
    handler = AuditHandler(context, load_catalog(LOCAL_CATALOG_FILE).get("gpt-4o"), logger=logging.getLogger("test.bench.audit"))
    list(GenericFakeChatModel(messages=iter([AIMessage(content="one two")])).stream("q", config={"callbacks": [handler]}))
    audit = logging.getLogger(AUDIT_LOGGER)
    audit.disabled, was = True, audit.disabled
    try:
        vote = AuditLog().event("feedback", context, message_id="m-1", score=1)
    finally:
        audit.disabled = was
    generated = list(audit_records(200))
    assert {frozenset(r) for r in generated if r["event"] == "model_call"} == {frozenset(handler.records[0])}
    assert {frozenset(r) for r in generated if r["event"] == "feedback"} == {frozenset(vote)}


def test_the_files_are_byte_for_byte_what_a_rotating_file_handler_writes(tmp_path):
    import logging.handlers

    real = tmp_path / "real"
    real.mkdir()
    handler = logging.handlers.RotatingFileHandler(real / "audit.jsonl", maxBytes=100_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.Logger("test.bench.rotation")
    logger.addHandler(handler)
    for record in audit_records(2_000, end=END):
        logger.info(json.dumps(record, ensure_ascii=False))
    handler.close()
    files = write_audit_log(tmp_path / "audit", 2_000, max_bytes=100_000, backups=3, end=END)
    assert sorted(p.name for p in real.iterdir()) == sorted(p.name for p in files)
    assert all((real / p.name).read_bytes() == p.read_bytes() for p in files)
