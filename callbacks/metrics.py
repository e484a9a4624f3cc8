"""Prometheus metrics of one replica: turns by outcome, model calls, tokens, cost, time to first token and latency,
open page sessions and sign-ins, in a registry of their own that the app's /metrics route serves (web/metrics.py).

`ChatMetrics.record` is an audit listener, like the chain statistics: every count comes from the record the audit
log keeps, so the two always agree. Labels are bounded: deployment, purpose, outcome, reason, token kind and tool, never
a person, conversation or message (cardinality and privacy); a label that sees more than MAX_LABEL_VALUES distinct
values counts the newcomers as "other". Each replica counts its own; Prometheus sums across replicas.
"""
from __future__ import annotations

import threading
from decimal import Decimal, InvalidOperation

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

MAX_LABEL_VALUES = 50
MAX_LABEL_LENGTH = 80
# Seconds. Time to first token: what a person waits before text appears; a model call: the whole call.
TTFT_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)
CALL_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Audit events of a message that was not sent, and the reason each stands for (message_not_sent names its own).
NOT_SENT = {"sign_in_expired": "sign_in_expired", "context_guard": "context_too_long", "rate_limited": "rate_limited",
            "budget_refused": "over_budget"}
SIGN_IN_OUTCOMES = ("ok", "rejected", "error", "unavailable")


class _LabelValues:
    """Keeps every label's values bounded: the first MAX_LABEL_VALUES distinct values are kept, later ones are
    "other" (an unexpected source of values cannot grow the series without end)."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: object) -> str:
        text = "unknown" if value is None or value == "" else str(value)[:MAX_LABEL_LENGTH]
        seen = self._seen.get(label)
        if seen is not None and text in seen:
            return text
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if text in seen:
                return text
            if len(seen) >= self._limit:
                return "other"
            seen.add(text)
            return text


class ChatMetrics:
    """The counters, histograms and gauges of one process. `registry`: where they live (a new one by default, so
    tests and several apps in one process never collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # No `*_created` series: a second series per counter and histogram that the text format shows as a gauge and
        # rate() never needs (prometheus_client's switch is process-wide; nothing else here exports metrics).
        disable_created_metrics()
        self.registry = registry or CollectorRegistry()
        self._label = _LabelValues()
        r = self.registry
        self.turns = Counter("chat_turns", "Chat turns by how they ended: ok, stopped, filtered, failed (reason: the "
                             "failure kind), not_sent (reason: why it was refused) or interrupted (a replica stopped "
                             "mid-answer). One per answer: a side-by-side comparison counts two.",
                             ["outcome", "reason"], registry=r)
        self.model_calls = Counter("chat_model_calls", "Model calls (answers, summaries, drafts, embeddings) by "
                                   "deployment, purpose and outcome.", ["deployment", "purpose", "outcome"], registry=r)
        self.tokens = Counter("chat_tokens", "Tokens of model calls by deployment, purpose and kind (prompt or "
                              "completion), as audited (estimated for stopped streams).",
                              ["deployment", "purpose", "kind"], registry=r)
        # A counter of its own, not a third kind of chat_tokens: reasoning tokens are some of the completion tokens,
        # and sum(chat_tokens_total) must not count them twice.
        self.reasoning_tokens = Counter("chat_reasoning_tokens", "Hidden reasoning tokens of reasoning models by "
                                        "deployment and purpose: part of chat_tokens{kind=\"completion\"} (billed "
                                        "as output), never shown. 0 for stopped streams (not estimated).",
                                        ["deployment", "purpose"], registry=r)
        self.cost = Counter("chat_cost_usd", "Cost of model calls in US dollars at the catalog's prices.",
                            ["deployment", "purpose"], registry=r)
        self.time_to_first_token = Histogram("chat_time_to_first_token_seconds", "Seconds from a streamed model "
                                             "call's start to its first token.", ["deployment", "purpose"],
                                             buckets=TTFT_BUCKETS, registry=r)
        self.call_seconds = Histogram("chat_model_call_seconds", "Seconds a model call took, start to end, whatever "
                                      "its outcome.", ["deployment", "purpose"], buckets=CALL_BUCKETS, registry=r)
        self.tool_calls = Counter("chat_tool_calls", "Agent tool calls by tool and outcome.", ["tool", "outcome"],
                                  registry=r)
        self.open_sessions = Gauge("chat_open_sessions", "Browser page sessions connected to this replica (open "
                                   "Streamlit WebSocket connections).", registry=r)
        self.sign_ins = Counter("chat_sign_ins", "Completed sign-in attempts: ok, rejected (by the checks of Entra's "
                                "answer), error (the app failed), unavailable (Entra ID could not be reached).",
                                ["outcome"], registry=r)
        for outcome in SIGN_IN_OUTCOMES:  # present from the start, so rate() sees the first one
            self.sign_ins.labels(outcome)

    # -- the audit listener --------------------------------------------------------------------------------------------
    def record(self, record: dict) -> None:
        """Counts one audit record (see callbacks/audit.py `AuditLog`)."""
        event = record.get("event")
        if event == "model_call":
            self._model_call(record)
        elif event == "turn_ended":
            self._turn(record.get("outcome"), record.get("failure") or "")
        elif event == "message_not_sent":
            self._turn("not_sent", record.get("reason"))
        elif event in NOT_SENT:
            self._turn("not_sent", NOT_SENT[event])
        elif event == "turn_interrupted":
            self._turn("interrupted", "")
        elif event == "tool_call":
            self.tool_calls.labels(self._label("tool", record.get("tool")),
                                   self._label("tool_outcome", record.get("outcome"))).inc()

    def _turn(self, outcome: object, reason: object) -> None:
        reason = self._label("turn_reason", reason) if reason else ""
        self.turns.labels(self._label("turn_outcome", outcome), reason).inc()

    def _model_call(self, record: dict) -> None:
        deployment = self._label("deployment", record.get("deployment"))
        purpose = self._label("purpose", record.get("purpose"))
        self.model_calls.labels(deployment, purpose, self._label("call_outcome", record.get("outcome"))).inc()
        for kind in ("prompt", "completion"):
            tokens = _number(record.get(f"{kind}_tokens"))
            if tokens > 0:
                self.tokens.labels(deployment, purpose, kind).inc(tokens)
        reasoning = _number(record.get("reasoning_tokens"))
        if reasoning > 0:
            self.reasoning_tokens.labels(deployment, purpose).inc(reasoning)
        try:
            cost = Decimal(str(record.get("cost_usd") or 0))
        except InvalidOperation:
            cost = Decimal(0)
        if cost > 0:
            self.cost.labels(deployment, purpose).inc(float(cost))
        ttft = record.get("time_to_first_token_ms")
        if ttft is not None:
            self.time_to_first_token.labels(deployment, purpose).observe(_number(ttft) / 1000)
        if record.get("latency_ms") is not None:
            self.call_seconds.labels(deployment, purpose).observe(_number(record.get("latency_ms")) / 1000)

    # -- outside the audit log ---------------------------------------------------------------------------------------
    def sign_in(self, outcome: str) -> None:
        """One completed sign-in attempt (auth/routes.py); `outcome` is one of SIGN_IN_OUTCOMES."""
        self.sign_ins.labels(outcome if outcome in SIGN_IN_OUTCOMES else "error").inc()

    def session_opened(self) -> None:
        self.open_sessions.inc()

    def session_closed(self) -> None:
        self.open_sessions.dec()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric in the registry."""
        return generate_latest(self.registry)


def _number(value: object) -> float:
    try:
        return max(float(value or 0), 0.0)
    except (TypeError, ValueError):
        return 0.0


_lock = threading.Lock()
_process: ChatMetrics | None = None


def process_metrics() -> ChatMetrics:
    """This process's metrics, shared by the routes (app.py) and every page session's audit log (ui/services.py), with
    the process's CPU, memory and file descriptors (process_* metrics) alongside."""
    global _process
    with _lock:
        if _process is None:
            _process = ChatMetrics()
            ProcessCollector(registry=_process.registry)
        return _process
