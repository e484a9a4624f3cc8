"""`python -m experiments`: evaluate chains over a JSONL dataset from the command line, no browser.

    python -m experiments run DATASET --chains assistant@1,concise@1 [--deployment gpt-5-mini] [--judge gpt-5.4-nano]
                                      [--concurrency 4] [--out DIR] [--restart] [--retry-failed]
    python -m experiments report DIR

`run` answers every item with every chain through the turn engine, with the app's identity (Entra ID, from the same
settings as the app) and the app's audit log (purpose `evaluation`), judges each pair of chains if --judge is given,
and writes DIR/results.jsonl, DIR/report.md and DIR/report.html (DIR defaults to .data/experiments/<dataset-stem>).
Running the same command again resumes: finished items are not run again. `python -m localdev.experiment run ...`
takes the same arguments and runs against the local Entra ID and Azure OpenAI emulators (no Azure needed).

Exit codes: 0 the run finished (some answers may have failed: see the report); 1 the settings or Entra ID sign-in
did not work; 2 bad command line or input (unknown chain or deployment, unreadable dataset, no valid item, results in
DIR from another setup), nothing called; 130 stopped (Ctrl-C or SIGTERM): what finished is kept, run again to resume.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OK, CANNOT_RUN, BAD_INPUT, INTERRUPTED = 0, 1, 2, 130


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="exit codes: 0 finished, 1 settings or sign-in failed, 2 bad input "
                                          "(nothing called), 130 interrupted (run again to resume)")
    commands = main.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a dataset through chains, judge them, write the report")
    run.add_argument("dataset", type=Path, help="a JSONL file, one item per line")
    run.add_argument("--chains", required=True, help="comma-separated chains with versions, e.g. assistant@1,concise@1")
    run.add_argument("--deployment", help="the deployment every chain answers on (default: the catalog's default)")
    run.add_argument("--judge", metavar="DEPLOYMENT", help="a deployment for the pairwise judge (needs two chains)")
    run.add_argument("--concurrency", type=int, default=4, help="turns in flight at once (default 4)")
    run.add_argument("--out", type=Path, help="directory for results and report (default .data/experiments/<stem>)")
    run.add_argument("--max-output-tokens", type=int, help="answer limit per turn (default: the app's)")
    run.add_argument("--temperature", type=float, help="for chains that let people choose (default: the app's)")
    run.add_argument("--max-attempts", type=int, default=4, help="tries per task when Azure throttles (default 4)")
    run.add_argument("--retry-failed", action="store_true", help="also run again answers that failed in earlier runs")
    run.add_argument("--restart", action="store_true", help="forget earlier results in --out and start over")
    run.add_argument("--progress-interval", type=float, default=2.0,
                     help="seconds between progress lines when stderr is not a terminal (default 2)")
    report = commands.add_parser("report", help="write report.md and report.html again from DIR/results.jsonl")
    report.add_argument("dir", type=Path)
    return main


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "report":
        return report_command(args.dir)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops like Ctrl-C: what finished is kept
    try:
        return run_command(args)
    except KeyboardInterrupt:
        say("stopped before the run began")
        return INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def report_command(directory: Path) -> int:
    from experiments.report import write_report
    from experiments.runner import RESULTS_FILE

    if not (directory / RESULTS_FILE).exists():
        say(f"{directory / RESULTS_FILE}: no results to report")
        return BAD_INPUT
    markdown, page = write_report(directory)
    print(f"report: {markdown}\n        {page}")
    return OK


def run_command(args: argparse.Namespace) -> int:
    from experiments.dataset import DatasetError, load_dataset
    from experiments.runner import PlanError, resolve_chains

    try:
        dataset = load_dataset(args.dataset)
    except DatasetError as exc:
        say(str(exc))
        return BAD_INPUT
    for problem in dataset.problems:
        say(f"{args.dataset}:{problem.line}: skipped: {problem.message}")
    if not dataset.items:
        say(f"{args.dataset}: no valid item to run")
        return BAD_INPUT
    try:
        chains = resolve_chains(args.chains)
    except PlanError as exc:
        say(str(exc))
        return BAD_INPUT
    out = args.out or ROOT / ".data" / "experiments" / dataset.name
    return _run(args, dataset, chains, out)


def _run(args, dataset, chains, out: Path) -> int:
    from config import ConfigError, load_settings
    from experiments.report import write_report
    from experiments.runner import Plan, PlanError, Runner, resolve_deployment

    try:
        settings = load_settings()
    except ConfigError as exc:
        say(str(exc))
        say("(to run against the local emulators instead: python -m localdev.experiment run ...)")
        return CANNOT_RUN
    try:
        deployment = resolve_deployment(settings.catalog, args.deployment or settings.catalog.default)
        judge = resolve_deployment(settings.catalog, args.judge, "--judge") if args.judge else None
        if args.restart:
            forget(out)
        plan = Plan(dataset=dataset, chains=chains, deployment=deployment, out=out, judge=judge,
                    concurrency=args.concurrency,
                    max_output_tokens=args.max_output_tokens or settings.app.default_max_output_tokens,
                    temperature=settings.app.default_temperature if args.temperature is None else args.temperature,
                    max_attempts=args.max_attempts, retry_failed=args.retry_failed)
        runner = Runner(settings, plan, progress=sys.stderr, progress_interval=args.progress_interval)
        runner.prepare()
    except PlanError as exc:
        say(str(exc))
        return BAD_INPUT
    try:
        runner.provider()  # the app's token, once, before any model call: a sign-in problem stops here
    except Exception as exc:  # noqa: BLE001 - said in one line; the details are azure-identity's message
        say(f"could not get the app's token for Azure OpenAI from Microsoft Entra ID: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}")
        return CANNOT_RUN
    say(f"evaluating {len(dataset.items)} items × {len(chains)} chains on {deployment.name}"
        f"{f', judged by {judge.name}' if judge else ''}, {plan.concurrency} at a time → {out}")
    summary = runner.run()
    markdown, page = write_report(out, problems=[str(p) for p in dataset.problems])
    print(f"results: {summary.results}\nreport:  {markdown}\n         {page}")
    if summary.interrupted:
        say(f"stopped: {summary.done} of {summary.total} tasks done ({summary.ran} in this run); run the same "
            "command again to resume")
        return INTERRUPTED
    say(f"done: {summary.total} tasks ({summary.ran} in this run, {summary.failed} failed) in {summary.seconds:.1f} s")
    return OK


def forget(out: Path) -> None:
    """--restart: the results, the run's database and its stored images go; the reports are rewritten anyway."""
    from experiments.runner import DATABASE_FILE, RESULTS_FILE

    for name in (RESULTS_FILE, DATABASE_FILE, DATABASE_FILE + "-wal", DATABASE_FILE + "-shm"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "images", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
