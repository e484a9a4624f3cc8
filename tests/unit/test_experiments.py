"""The offline evaluation with fake models: dataset lines (good, shorthand, malformed with their line numbers),
scorers, the pairwise judge's position swap, and the runner through the real turn engine (results written and
fsynced, a resumed run skipping finished work, a throttled turn tried again after its retry-after, Ctrl-C keeping what
finished, unknown chains and deployments refused before any call), and the report."""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from PIL import Image

from callbacks.audit import AuditLog
from experiments.__main__ import main
from experiments.dataset import Item, Message, load_dataset
from experiments.judge import JUDGE_PROMPT, JudgeCallFailed, combine, judge_messages, judge_pair, parse_verdict
from experiments.report import build_report, render_html, render_markdown, write_report
from experiments.runner import Plan, PlanError, Progress, ResultsFile, Runner, resolve_chains, resolve_deployment
from experiments.scorers import score
from localdev.experiment import scripted_verdict
from tests.unit.test_turn_engine import Audit, settings  # noqa: F401 - the fixture


def write(path: Path, *lines: str | dict) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


# -- the dataset -----------------------------------------------------------------------------------------------------
def test_good_lines_and_the_shorthand_load_with_defaults(tmp_path):
    picture = tmp_path / "pictures" / "red.png"
    picture.parent.mkdir()
    Image.new("RGB", (8, 8), "red").save(picture)
    dataset = load_dataset(write(
        tmp_path / "set.jsonl",
        {"id": "paris", "messages": [{"role": "user", "content": "Capital of France?"}], "reference": "Paris",
         "scorer": "exact", "tags": ["facts"]},
        "",  # blank lines are skipped silently
        {"question": "What is 2+2?", "reference": "4"},
        {"messages": [{"role": "user", "content": "I am Ada."}, {"role": "assistant", "content": "Hello Ada."},
                      {"role": "user", "content": "Who am I?"}], "images": ["pictures/red.png"]},
    ))
    assert not dataset.problems and dataset.name == "set"
    first, shorthand, multi = dataset.items
    assert (first.id, first.scorer, first.tags, first.question) == ("paris", "exact", ("facts",), "Capital of France?")
    assert shorthand.id == "3" and shorthand.messages == (Message("user", "What is 2+2?"),)
    assert shorthand.scorer == "contains"  # the default when there is a reference
    assert multi.id == "4" and multi.reference is None and multi.scorer is None
    assert [m.role for m in multi.history] == ["user", "assistant"] and multi.question == "Who am I?"
    assert multi.images == (picture.resolve(),)


@pytest.mark.parametrize("line, says", [
    ('{"question": "unterminated', "not valid JSON"),
    ('["a", "list"]', "expected a JSON object"),
    ('{"reference": "Paris"}', "missing `messages`"),
    ('{"messages": []}', "non-empty list"),
    ('{"messages": [{"role": "system", "content": "x"}]}', "role 'system'"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}', "last message"),
    ('{"question": "q", "reference": "x", "scorer": "fuzzy"}', "unknown scorer 'fuzzy'"),
    ('{"question": "q", "scorer": "exact"}', "needs a `reference`"),
    ('{"question": "q", "reference": "([a-z", "scorer": "regex"}', "not a valid regular expression"),
    ('{"question": "q", "refrence": "typo"}', "unknown key 'refrence'"),
    ('{"question": "q", "images": ["missing.png"]}', "image 'missing.png' not found"),
    ('{"question": "q", "tags": "facts"}', "`tags` must be a list"),
    ('{"question": "q", "messages": [{"role": "user", "content": "q"}]}', "not both"),
])
def test_a_bad_line_is_reported_with_its_number_and_the_others_still_load(tmp_path, line, says):
    dataset = load_dataset(write(tmp_path / "set.jsonl", {"question": "first"}, line, {"question": "third"}))
    assert [item.question for item in dataset.items] == ["first", "third"]
    (problem,) = dataset.problems
    assert problem.line == 2 and says in problem.message and str(problem).startswith("line 2: ")


def test_a_repeated_id_is_a_problem_on_the_later_line(tmp_path):
    dataset = load_dataset(write(tmp_path / "set.jsonl", {"id": "a", "question": "1"}, {"id": "a", "question": "2"}))
    assert [i.question for i in dataset.items] == ["1"]
    assert dataset.problems[0].line == 2 and "already used on line 1" in dataset.problems[0].message


# -- scorers ---------------------------------------------------------------------------------------------------------
def test_scorers():
    assert score("exact", "  **Paris.** ", "paris") == 1.0
    assert score("exact", "Paris is the capital", "Paris") == 0.0
    assert score("contains", "The capital is\n  PARIS, France", "paris, france") == 1.0
    assert score("contains", "Lyon", "Paris") == 0.0
    assert score("regex", "status 429 returned", r"\b4\d\d\b") == 1.0
    assert score("regex", "Paris", "paris") == 0.0 and score("regex", "Paris", "(?i)paris") == 1.0
    assert score(None, "anything", None) is None and score("exact", "x", None) is None
    with pytest.raises(ValueError, match="unknown scorer"):
        score("fuzzy", "a", "b")


# -- the judge -------------------------------------------------------------------------------------------------------
ITEM = Item("paris", (Message("user", "Capital of France?"),), line=1, reference="Paris", scorer="contains")


def answers_in(messages) -> tuple[str, str]:
    text = messages[-1].text
    return (text.split("<answer_1>\n")[1].split("\n</answer_1>")[0],
            text.split("<answer_2>\n")[1].split("\n</answer_2>")[0])


def test_a_judge_that_always_prefers_position_1_gives_no_winner():
    asked = []

    def first_position(messages):
        asked.append(answers_in(messages))
        return "1"

    judgement = judge_pair(first_position, ITEM, "a@1", "Paris.", "b@1", "Lyon.")
    assert judgement.verdict == "inconsistent" and judgement.winner is None
    assert asked == [("Paris.", "Lyon."), ("Lyon.", "Paris.")]  # asked twice, the answers swapped
    assert (judgement.first, judgement.second) == ("1", "1")


@pytest.mark.parametrize("answer_a, answer_b, winner", [("Paris.", "Lyon.", "a@1"), ("Lyon.", "Paris.", "b@1")])
def test_a_consistent_judge_names_the_right_chain_whatever_the_order(answer_a, answer_b, winner):
    def knows_paris(messages):
        one, two = answers_in(messages)
        return "1" if "Paris" in one else "2" if "Paris" in two else "tie"

    judgement = judge_pair(knows_paris, ITEM, "a@1", answer_a, "b@1", answer_b)
    assert judgement.verdict == "win" and judgement.winner == winner


@pytest.mark.parametrize("replies", [("Answer 1 is better.", "1"), ("2", "I cannot decide"), ("", ""), ("1 or 2", "2")])
def test_an_off_format_reply_is_no_verdict_never_a_win(replies):
    queue = list(replies)
    judgement = judge_pair(lambda messages: queue.pop(0), ITEM, "a@1", "Paris.", "b@1", "Lyon.")
    assert judgement.verdict == "no_verdict" and judgement.winner is None


def test_verdicts_parse_strictly_and_combine_across_the_swap():
    assert [parse_verdict(r) for r in ("1", " 2\n", "TIE", "**1**", "`2`.", "'tie'")] == ["1", "2", "tie", "1", "2", "tie"]
    assert [parse_verdict(r) for r in ("12", "one", "Answer 2", None, "1, because")] == [None] * 5
    assert combine("a", "b", "tie", "tie") == ("tie", None)
    assert combine("a", "b", "2", "1") == ("win", "b")
    assert combine("a", "b", "tie", "1") == ("inconsistent", None)


def test_a_failed_judge_call_is_no_verdict_with_its_kind():
    from chains.errors import Failure

    def failing(messages):
        raise JudgeCallFailed(Failure("server_error", "5xx"))

    judgement = judge_pair(failing, ITEM, "a@1", "x", "b@1", "y")
    assert judgement.verdict == "no_verdict" and judgement.error == "server_error"


def test_the_judge_reads_the_conversation_reference_and_both_answers():
    system, human = judge_messages(ITEM, "first answer", "second answer")
    assert system.text == JUDGE_PROMPT and "exactly one of: 1" in system.text
    assert "user: Capital of France?" in human.text and "Paris" in human.text
    assert human.text.index("first answer") < human.text.index("second answer")
    # The local emulator's judge is position-blind: swapping the answers swaps its verdict.
    assert scripted_verdict(human.text) == "tie"
    paris_second = judge_messages(ITEM, "Lyon", "Paris").pop().text
    assert scripted_verdict(paris_second) == "2" and scripted_verdict(judge_messages(ITEM, "Paris", "Lyon")[1].text) == "1"


# -- the runner, through the real turn engine with fake models ------------------------------------------------------
class Script:
    """How the fake deployment behaves, shared by every model the factory builds, and what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (kind, deployment, last message text)
        self.lock = threading.Lock()
        self.throttles = 0  # the next answers refused with 429 and retry-after: 1
        self.judge = lambda messages: "tie"
        self.gate: tuple[str, threading.Event, threading.Event] | None = None  # (question, reached, release)


def rate_limited(seconds: int) -> openai.RateLimitError:
    request = httpx.Request("POST", "https://contoso.openai.azure.com/openai/deployments/gpt-4o/chat/completions")
    response = httpx.Response(429, headers={"retry-after": str(seconds)}, request=request)
    return openai.RateLimitError("Rate limit is exceeded.", response=response, body=None)


class FakeAzure(BaseChatModel):
    """Streams an answer per chain (the assistant knows the capitals, the concise one does not); `invoke` is the
    judge. Usage comes in the last chunk, as Azure sends it."""

    script: Any
    options: dict = {}

    @property
    def _llm_type(self) -> str:
        return "fake-azure"

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        question = messages[-1].text
        with self.script.lock:
            self.script.calls.append(("answer", self.options["deployment"], question))
            throttled = self.script.throttles > 0
            self.script.throttles -= int(throttled)
        if throttled:
            raise rate_limited(1)
        gate = self.script.gate
        if gate and gate[0] == question:
            gate[1].set()
            gate[2].wait(10)
        concise = "at most three sentences" in messages[0].text
        text = "I am not sure." if concise else f"The answer to '{question}' is Paris."
        for word in text.split():
            if run_manager:
                run_manager.on_llm_new_token(word + " ")
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata={"input_tokens": 40, "output_tokens": len(text.split()), "total_tokens": 0},
            response_metadata={"finish_reason": "stop"}))

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        with self.script.lock:
            self.script.calls.append(("judge", self.options["deployment"], messages[-1].text))
        message = AIMessage(self.script.judge(messages),
                            usage_metadata={"input_tokens": 120, "output_tokens": 1, "total_tokens": 121},
                            response_metadata={"finish_reason": "stop"})
        return ChatResult(generations=[ChatGeneration(message=message)])


class Rig:
    def __init__(self, settings, tmp_path) -> None:
        self.settings, self.out, self.script, self.audit = settings, tmp_path / "out", Script(), Audit()
        self.logger = logging.getLogger(f"test.experiments.{tmp_path.name}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.audit)
        self.dataset_path = write(tmp_path / "set.jsonl",
                                  {"id": "fr", "question": "Capital of France?", "reference": "Paris", "tags": ["geo"]},
                                  '{"id": "broken", ',
                                  {"id": "it", "messages": [{"role": "user", "content": "Let us talk about Italy."},
                                                            {"role": "assistant", "content": "Gladly."},
                                                            {"role": "user", "content": "Capital of Italy?"}],
                                   "reference": "Rome", "scorer": "contains", "tags": ["geo", "multi-turn"]})

    def factory(self, settings, deployment, provider, *, user_security_context=None, temperature=None,
                max_output_tokens=None, callbacks=None, **_reasoning):
        options = {"deployment": deployment.name, "token": provider(), "context": user_security_context}
        return FakeAzure(script=self.script, options=options, callbacks=callbacks)

    def plan(self, chains="assistant@1,concise@1", judge="gpt-4o-mini", **changes) -> Plan:
        values = dict(dataset=load_dataset(self.dataset_path), chains=resolve_chains(chains),
                      deployment=self.settings.catalog.get("gpt-4o"), out=self.out,
                      judge=self.settings.catalog.get(judge) if judge else None, concurrency=2,
                      max_output_tokens=300, temperature=0.5)
        values.update(changes)
        return Plan(**values)

    def runner(self, plan: Plan | None = None, **kwargs) -> Runner:
        return Runner(self.settings, plan or self.plan(), audit_log=AuditLog(self.logger),
                      token_provider=lambda: "app-token", model_factory=self.factory, progress=io.StringIO(), **kwargs)

    def records(self, kind: str | None = None) -> list[dict]:
        lines = (self.out / "results.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if kind is None or r["kind"] == kind]


@pytest.fixture
def rig(settings, tmp_path) -> Rig:
    return Rig(settings, tmp_path)


def test_a_run_answers_every_item_with_every_chain_judges_them_and_records_it_all(rig):
    rig.script.judge = lambda messages: ("1" if "Paris" in answers_in(messages)[0] else
                                         "2" if "Paris" in answers_in(messages)[1] else "tie")
    summary = rig.runner().run()

    assert not summary.interrupted and summary.total == summary.done == summary.ran == 6 and summary.failed == 0
    answers = {(r["item"], r["chain"]): r for r in rig.records("answer")}
    assert set(answers) == {(i, c) for i in ("fr", "it") for c in ("assistant@1", "concise@1")}
    paris = answers[("fr", "assistant@1")]
    assert paris["status"] == "complete" and paris["score"] == 1.0 and paris["answer"].startswith("The answer")
    assert answers[("fr", "concise@1")]["score"] == 0.0 and answers[("it", "assistant@1")]["score"] == 0.0
    assert paris["prompt_tokens"] == 40 and paris["model_calls"] == 1 and paris["attempts"] == 1
    assert paris["latency_ms"] >= paris["ttft_ms"] >= 0 and paris["tags"] == ["geo"]
    assert paris["deployment"] == "gpt-4o" and paris["cost_usd"] == str(rig.settings.catalog.get("gpt-4o").cost(40, 8))
    judgements = {r["item"]: r for r in rig.records("judgement")}
    assert judgements["fr"]["verdict"] == "win" and judgements["fr"]["winner"] == "assistant@1"
    assert judgements["fr"]["replies"] == ["1", "2"] and judgements["fr"]["model_calls"] == 2
    assert judgements["it"]["verdict"] == "win"  # "Paris" again: the fake judge is not clever
    (run,) = rig.records("run")
    assert run["skipped_lines"] == [2] and run["chains"] == ["assistant@1", "concise@1"] and run["judge"] == "gpt-4o-mini"
    # The multi-turn item was asked in a conversation holding its earlier messages.
    italy = next(c for c in rig.script.calls if c[2] == "Capital of Italy?")
    assert italy[1] == "gpt-4o"
    # Every call audited with the app's identity and purpose evaluation; the judge's as judge@1 on its deployment.
    calls = [r for r in rig.audit.records if r["event"] == "model_call"]
    assert len(calls) == 8 and {r["purpose"] for r in calls} == {"evaluation"} and {r["origin"] for r in calls} == {
        "evaluation"}
    assert {r["user_oid"] for r in calls} == {rig.settings.entra.client_id}
    assert sorted({(r["chain"], r["deployment"]) for r in calls}) == [
        ("assistant@1", "gpt-4o"), ("concise@1", "gpt-4o"), ("judge@1", "gpt-4o-mini")]
    # Stored in the run's own database, never the people's.
    assert (rig.out / "evaluation.db").exists() and not (rig.settings.app.data_dir / "conversations.db").exists()


def test_a_resumed_run_does_only_what_is_missing_and_survives_a_torn_last_line(rig):
    rig.runner(rig.plan(judge=None, chains="assistant@1")).run()
    assert len(rig.script.calls) == 2
    with open(rig.out / "results.jsonl", "a") as results:
        results.write('{"kind": "answer", "item": "fr", "ch')  # the process died while writing this line
    rig.script.calls.clear()

    summary = rig.runner(rig.plan()).run()  # a second chain and the judge now

    assert [c[0] for c in rig.script.calls].count("answer") == 2  # only concise@1's answers
    assert {c[2] for c in rig.script.calls if c[0] == "answer"} == {"Capital of France?", "Capital of Italy?"}
    assert summary.total == 6 and summary.ran == 4 and summary.done == 6
    keys = [(r["item"], r["chain"]) for r in rig.records("answer")]
    assert len(keys) == len(set(keys)) == 4  # nothing twice, nothing lost, the torn line cut off
    assert len(rig.records("judgement")) == 2
    rig.script.calls.clear()
    assert rig.runner(rig.plan()).run().ran == 0 and not rig.script.calls


def test_a_throttled_turn_is_tried_again_after_its_retry_after(rig):
    rig.script.throttles = 1
    plan = rig.plan(chains="assistant@1", judge=None, concurrency=1,
                    dataset=load_dataset(write(rig.out.parent / "one.jsonl", {"question": "Capital of France?"})))
    started = time.monotonic()
    rig.runner(plan).run()
    (record,) = rig.records("answer")
    assert record["status"] == "complete" and record["attempts"] == 2 and record["model_calls"] == 2
    assert time.monotonic() - started >= 0.95  # waited for retry-after: 1
    outcomes = [r["outcome"] for r in rig.audit.records if r["event"] == "model_call"]
    assert outcomes == ["throttled", "ok"]


def test_a_turn_still_throttled_after_its_attempts_is_recorded_as_failed_and_not_judged(rig):
    rig.script.throttles = 2
    plan = rig.plan(max_attempts=2, concurrency=1,
                    dataset=load_dataset(write(rig.out.parent / "one.jsonl", {"question": "Capital of France?"})))
    summary = rig.runner(plan).run()
    answers = rig.records("answer")
    failed = next(r for r in answers if r["status"] != "complete")
    assert failed["failure"] == "throttled" and failed["attempts"] == 2 and summary.failed == 1
    (judgement,) = rig.records("judgement")
    assert judgement["verdict"] == "not_judged" and "did not answer (throttled)" in judgement["reason"]
    assert not [c for c in rig.script.calls if c[0] == "judge"]


def test_ctrl_c_stops_the_run_and_keeps_what_finished(rig):
    reached, release = threading.Event(), threading.Event()
    rig.script.gate = ("Capital of Italy?", reached, release)

    def press_ctrl_c() -> None:
        if reached.wait(10):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)  # the main thread takes the KeyboardInterrupt first
        release.set()

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    summary = rig.runner(rig.plan(chains="assistant@1", judge=None, concurrency=1)).run()
    presser.join(5)
    assert summary.interrupted and summary.done == 1 and summary.unfinished == ["it (assistant@1)"]
    assert [r["item"] for r in rig.records("answer")] == ["fr"]
    rig.script.gate = None
    assert rig.runner(rig.plan(chains="assistant@1", judge=None)).run().ran == 1
    assert sorted(r["item"] for r in rig.records("answer")) == ["fr", "it"]


def test_results_of_another_deployment_are_not_mixed_in(rig):
    rig.runner(rig.plan(judge=None, chains="assistant@1")).run()
    with pytest.raises(PlanError, match="made with deployment 'gpt-4o'"):
        rig.runner(rig.plan(deployment=rig.settings.catalog.get("gpt-4o-mini"))).prepare()


def test_plans_that_cannot_run_are_refused_naming_the_valid_choices(rig):
    with pytest.raises(PlanError) as unknown:
        resolve_chains("assistant@1,summariser@2")
    assert "'summariser@2'" in str(unknown.value) and "assistant@1, concise@1, draft_refine@1" in str(unknown.value)
    with pytest.raises(PlanError, match="unknown chain 'assistant@7'"):
        resolve_chains("assistant@7")
    assert [c.label for c in resolve_chains("assistant, concise@1")] == ["assistant@1", "concise@1"]
    with pytest.raises(PlanError, match="named twice"):
        resolve_chains("assistant@1,assistant")
    with pytest.raises(PlanError, match="the deployments are: gpt-5-mini, gpt-5.1, gpt-5.4-nano, o4-mini, gpt-4o, gpt-4o-mini, gpt-35-turbo"):
        resolve_deployment(rig.settings.catalog, "gpt-5", "--judge")
    with pytest.raises(PlanError, match="at least two"):
        rig.plan(chains="assistant@1", judge="gpt-4o")


@pytest.mark.parametrize("args, says", [
    (["--chains", "assistant@1,summariser@2"], "the chains are: assistant@1, concise@1, draft_refine@1"),
    (["--chains", "assistant@1,concise@1", "--deployment", "gpt-5"], "the deployments are: gpt-5-mini, gpt-5.1, gpt-5.4-nano, o4-mini, gpt-4o"),
    (["--chains", "assistant@1,concise@1", "--judge", "claude"], "unknown deployment 'claude' for --judge"),
])
def test_the_cli_refuses_an_unknown_chain_or_deployment_before_any_call(rig, monkeypatch, capsys, args, says):
    def no_token(*args, **kwargs):
        raise AssertionError("a token was asked for")

    monkeypatch.setattr("auth.credentials.app_token_provider", no_token)
    code = main(["run", str(rig.dataset_path), "--out", str(rig.out), *args])
    err = capsys.readouterr().err
    assert code == 2 and says in err
    assert f"{rig.dataset_path}:2: skipped: not valid JSON" in err  # the bad line is named, with its number
    assert not (rig.out / "results.jsonl").exists()
    assert not (rig.settings.app.data_dir / "audit" / "audit.jsonl").exists()


def test_the_cli_refuses_a_dataset_with_no_valid_item(tmp_path, capsys):
    assert main(["run", str(write(tmp_path / "bad.jsonl", "{", "[]")), "--chains", "assistant@1"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1: skipped" in err and "bad.jsonl:2: skipped" in err and "no valid item" in err
    assert main(["run", str(tmp_path / "absent.jsonl"), "--chains", "assistant@1"]) == 2


def test_results_lines_are_appended_whole_and_a_torn_tail_is_cut(tmp_path):
    results = ResultsFile(tmp_path / "results.jsonl")
    results.append({"kind": "answer", "item": "1", "chain": "a@1"})
    results.close()
    with open(results.path, "a") as handle:
        handle.write('not json\n{"kind": "answer", "item": "2", "chain": "a@1"}\n{"kind": "ans')
    read = ResultsFile(results.path)
    assert [r["item"] for r in read.read()] == ["1", "2"] and read.unreadable == 1
    assert results.path.read_text().endswith("}\n")
    read.append({"kind": "answer", "item": "3", "chain": "a@1"})
    read.close()
    assert [r["item"] for r in ResultsFile(results.path).read()] == ["1", "2", "3"]


def test_progress_is_one_line_with_done_total_elapsed_and_eta():
    stream = io.StringIO()
    progress = Progress(40, 10, stream, interval=0)
    progress.started -= 10
    progress.done = 20
    progress.show(force=True)
    line = stream.getvalue().strip()
    assert line.startswith("[##############..............] 20/40") and "elapsed 0:10" in line and "ETA 0:20" in line


# -- the report ------------------------------------------------------------------------------------------------------
def test_the_report_counts_only_consistent_wins_and_is_a_self_contained_page(rig):
    rig.script.judge = lambda messages: "1"  # position bias: every verdict inconsistent
    rig.runner().run()
    markdown, page = write_report(rig.out, problems=["line 2: not valid JSON"])
    report = build_report(ResultsFile(rig.out / "results.jsonl").read())
    (pair,) = report.pairs
    assert (pair.wins_a, pair.wins_b, pair.inconsistent, pair.decisive) == (0, 0, 2, 0)
    assert pair.win_rate_a is None and pair.consistency == 0.0
    chains = {row.chain: row for row in report.chains}
    assert chains["assistant@1"].scored == 2 and chains["assistant@1"].correct == 1
    assert report.tags == ["geo", "multi-turn"]
    text = markdown.read_text()
    assert "| assistant@1 | concise@1 | 0 | 0 | 0 | 2 |" in text and "line 2: not valid JSON" in text
    html = page.read_text()
    assert html.count("<svg") >= 4 and "<script" not in html and "<link" not in html
    assert "src=" not in html and "@import" not in html and "url(" not in html


def test_a_report_of_an_unfinished_run_says_so():
    records = [{"kind": "run", "chains": ["a@1"], "items": 2, "deployment": "gpt-4o", "dataset": "x.jsonl"},
               {"kind": "answer", "item": "1", "chain": "a@1", "status": "failed", "failure": "timeout",
                "latency_ms": 5.0, "cost_usd": "0", "score": None, "tags": []}]
    report = build_report(records)
    assert ("state", "PARTIAL: the run has not finished; run the same command again to resume") in report.meta
    assert "1 timeout" in render_markdown(report) and "No scored answers" in render_html(report)
