"""`python -m localdev.experiment run ...` (the experiments CLI on the local emulators) as a child process against the local emulators (started in the child, as
`make experiment` does): the bundled dataset with two chains and the judge end to end, a run killed with SIGKILL
mid-way and started again (every (item, chain) recorded exactly once, none missing), Ctrl-C keeping what finished;
and the runner in this process against the emulators, waiting out Azure's 429 retry-after. Every wait is bounded."""
from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from tests.processes import Child, run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "experiments" / "example.jsonl"
CHAINS = ("assistant@1", "concise@1")


def cli_env(tmp_path: Path, guarded_child_env: dict[str, str], *, ttft: float, tokens_per_second: float) -> dict:
    """The child's environment: nothing of any Azure configuration, a data directory of its own, the network guard."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_",
                                                                   "LOCALDEV_"))}
    return {**env, **guarded_child_env, "APP_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
            "LOCALDEV_TTFT_SECONDS": str(ttft), "LOCALDEV_TOKENS_PER_SECOND": str(tokens_per_second)}


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "localdev.experiment", "run", str(EXAMPLE), "--chains", ",".join(CHAINS),
            "--out", str(out), "--progress-interval", "0.5", *extra]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def example_ids() -> list[str]:
    return [json.loads(line)["id"] for line in EXAMPLE.read_text().splitlines() if line.strip()]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter = Counter()
        self.loads: list[str] = []  # anything the page would fetch

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.loads.append(f"{tag} {name}={value}")


def test_the_cli_runs_the_example_with_two_chains_and_the_judge(tmp_path, guarded_child_env):
    out = tmp_path / "out"
    env = cli_env(tmp_path, guarded_child_env, ttft=0.02, tokens_per_second=500)
    done = run(command(out, "--judge", "gpt-4o-mini", "--concurrency", "4"), timeout=240, cwd=ROOT, env=env,
               capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "done: 36 tasks (36 in this run, 0 failed)" in done.stderr and "36/36" in done.stderr

    results = records(out / "results.jsonl")
    answers = [r for r in results if r["kind"] == "answer"]
    assert sorted((r["item"], r["chain"]) for r in answers) == sorted(
        (item, chain) for item in example_ids() for chain in CHAINS)
    assert {r["status"] for r in answers} == {"complete"} and all(r["ttft_ms"] is not None for r in answers)
    assert "You said: Repeat this phrase exactly" in next(r["answer"] for r in answers if r["item"] == "repeat-phrase")
    assert {r["score"] for r in answers if r["item"] == "repeat-phrase"} == {1.0}
    judgements = [r for r in results if r["kind"] == "judgement"]
    assert len(judgements) == 12 and {r["verdict"] for r in judgements} == {"tie"}  # identical scripted answers
    assert all(r["replies"] == ["tie", "tie"] and r["model_calls"] == 2 for r in judgements)

    # Asked with the app's identity and audited as an evaluation, in the app's audit log.
    audit = [json.loads(line) for line in (tmp_path / "data" / "audit" / "audit.jsonl").read_text().splitlines()]
    calls = [r for r in audit if r["event"] == "model_call"]
    assert len(calls) == 24 + 24 and {r["purpose"] for r in calls} == {"evaluation"}
    assert {r["origin"] for r in calls} == {"evaluation"} and {r["outcome"] for r in calls} == {"ok"}
    assert Counter(r["chain"] for r in calls) == {"assistant@1": 12, "concise@1": 12, "judge@1": 24}

    report = (out / "report.md").read_text()
    assert "| assistant@1 | concise@1 | 0 | 0 | 12 | 0 | 0 | 0 |" in report and "## Score by tag" in report
    page = _Page()
    page.feed((out / "report.html").read_text())
    assert page.tags["svg"] >= 4 and page.tags["script"] == 0 and page.tags["link"] == 0 and not page.loads
    assert (out / "evaluation.db").exists() and not (tmp_path / "data" / "conversations.db").exists()
    assert not (tmp_path / "netguard.log").read_text()


def test_a_run_killed_mid_way_resumes_without_running_anything_twice_or_losing_anything(tmp_path, guarded_child_env):
    out = tmp_path / "out"
    results = out / "results.jsonl"
    # Paced like a model (0.3 s to the first token), two at a time: the run takes long enough to be killed mid-way.
    env = cli_env(tmp_path, guarded_child_env, ttft=0.3, tokens_per_second=60)
    with Child(command(out, "--judge", "gpt-4o-mini", "--concurrency", "2"), cwd=ROOT, env=env,
               name="experiments run (to be killed)") as child:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = results.read_text().splitlines() if results.exists() else []
            if sum('"kind": "answer"' in line for line in lines) >= 6:
                break
            if child.process.poll() is not None:
                child.fail("ended before it could be killed mid-way")
            time.sleep(0.05)
        else:
            child.fail("recorded fewer than 6 answers within 120 s")
        child.kill()  # SIGKILL to the whole process group: no cleanup at all
        assert child.process.returncode == -9
    before = results.read_bytes()
    first = [json.loads(line) for line in before.decode().splitlines() if line.endswith("}")]
    answered_first = {(r["item"], r["chain"]) for r in first if r["kind"] == "answer"}
    assert 6 <= len(answered_first) < 24

    env = cli_env(tmp_path, guarded_child_env, ttft=0.02, tokens_per_second=500)
    done = run(command(out, "--judge", "gpt-4o-mini", "--concurrency", "4"), timeout=240, cwd=ROOT, env=env,
               capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    final = records(results)  # every line whole: a torn last line was cut before appending
    answers = Counter((r["item"], r["chain"]) for r in final if r["kind"] == "answer")
    expected = {(item, chain) for item in example_ids() for chain in CHAINS}
    assert set(answers) == expected and set(answers.values()) == {1}  # none missing, none twice
    judgements = Counter(r["item"] for r in final if r["kind"] == "judgement")
    assert set(judgements) == set(example_ids()) and set(judgements.values()) == {1}
    resumed = [r for r in final if r["kind"] == "answer"][len([r for r in first if r["kind"] == "answer"]):]
    assert not answered_first & {(r["item"], r["chain"]) for r in resumed}  # what finished was not asked again
    finished_before = len([r for r in first if r["kind"] != "run"])
    assert f"done: 36 tasks ({36 - finished_before} in this run" in done.stderr


def test_ctrl_c_stops_the_cli_keeping_what_finished(tmp_path, guarded_child_env):
    out = tmp_path / "out"
    env = cli_env(tmp_path, guarded_child_env, ttft=0.4, tokens_per_second=40)
    with Child(command(out, "--concurrency", "2"), cwd=ROOT, env=env, name="experiments run (Ctrl-C)") as child:
        child.wait_for_line(r"\] [2-9]/24 ", timeout=120)
        child.send_signal(signal.SIGINT)
        code = child.stop(None, timeout=60)
    assert code == 130 and "run the same command again to resume" in child.output
    kept = [r for r in records(out / "results.jsonl") if r["kind"] == "answer"]
    assert 2 <= len(kept) < 24 and {r["status"] for r in kept} == {"complete"}  # interrupted turns are not recorded
    assert "PARTIAL" in (out / "report.md").read_text()


def test_a_throttled_turn_waits_out_the_retry_after_then_answers(settings, emulators, tmp_path):
    from experiments.dataset import load_dataset
    from experiments.runner import Plan, Runner, resolve_chains

    dataset = tmp_path / "one.jsonl"
    dataset.write_text(json.dumps({"id": "q", "question": "Say hello", "reference": "hello"}) + "\n")
    plan = Plan(dataset=load_dataset(dataset), chains=resolve_chains("assistant@1"),
                deployment=settings.catalog.get("gpt-4o-mini"), out=tmp_path / "out", concurrency=1,
                max_output_tokens=100)
    # The SDK retries twice on its own (honouring retry-after); the third 429 reaches the runner, which waits too.
    emulators.aoai.inject("429", count=settings.azure_openai.max_retries + 1, retry_after=1)
    started = time.monotonic()
    summary = Runner(settings, plan, progress=io.StringIO()).run()
    elapsed = time.monotonic() - started
    (answer,) = [r for r in records(tmp_path / "out" / "results.jsonl") if r["kind"] == "answer"]
    assert summary.failed == 0 and answer["status"] == "complete" and answer["attempts"] == 2
    assert answer["score"] == 1.0 and elapsed >= settings.azure_openai.max_retries + 1 - 0.1
    audit = [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in audit if r["event"] == "model_call"] == ["throttled", "ok"]
    faults = [r.get("fault") for r in emulators.aoai.requests[-(settings.azure_openai.max_retries + 2):]]
    assert faults == ["429"] * (settings.azure_openai.max_retries + 1) + [None]
