"""`python -m localdev.experiment run DATASET ...`: the offline evaluation (`python -m experiments`, same arguments)
against the local Entra ID and Azure OpenAI emulators started in this process, so `make experiment` needs no Azure.

The scripted engine answers the chains as it answers the page, and answers the pairwise judge by a fixed,
position-blind rule (`scripted_verdict`), so a local run exercises the whole judge path deterministically.
LOCALDEV_TTFT_SECONDS and LOCALDEV_TOKENS_PER_SECOND pace the answers.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from experiments.__main__ import main as experiments_main
from experiments.judge import JUDGE_PROMPT
from localdev.engines import ScriptedEngine, scripted_reply
from localdev.stack import StackConfig, app_environment, start_emulators

ROOT = Path(__file__).resolve().parent.parent
_WORD = re.compile(r"\w+")


def scripted_verdict(prompt: str) -> str:
    """The answer sharing more words with the reference (or, without one, with the conversation) wins; equal counts
    tie. It ignores the order the answers come in, so the judge's position swap always agrees."""
    def section(name: str) -> str:
        found = re.search(rf"<{name}[^>]*>\n?(.*?)\n?</{name}>", prompt, re.DOTALL)
        return found.group(1) if found else ""

    target = {w.casefold() for w in _WORD.findall(section("reference") or section("conversation"))}
    one, two = (len(target & {w.casefold() for w in _WORD.findall(section(f"answer_{n}"))}) for n in (1, 2))
    return "tie" if one == two else ("1" if one > two else "2")


def reply(request) -> str:
    first = request.messages[0] if request.messages else {}
    if first.get("role") == "system" and first.get("content") == JUDGE_PROMPT:
        return scripted_verdict(str(request.messages[-1].get("content", "")))
    return scripted_reply(request)


def start_local():
    """The emulators in this process (as bench/ttft.py starts them); the environment then points the app's settings
    at them, and only at them."""
    data_dir = Path(os.environ.get("APP_DATA_DIR") or ROOT / ".data").resolve()
    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=data_dir, engine="scripted",
                         time_to_first_token=float(os.environ.get("LOCALDEV_TTFT_SECONDS", 0.25)),
                         tokens_per_second=float(os.environ.get("LOCALDEV_TOKENS_PER_SECOND", 40.0)))
    print("starting the local Entra ID and Azure OpenAI emulators (scripted answers)...", file=sys.stderr, flush=True)
    emulators = start_emulators(config)
    emulators.aoai.engine = ScriptedEngine(config.time_to_first_token, config.tokens_per_second or None, reply=reply)
    for name in [n for n in os.environ if n.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_"))]:
        del os.environ[name]  # only the emulators' settings, as `make run` gives the app
    os.environ.update(app_environment(config, emulators))
    os.environ["APP_DATA_DIR"] = str(data_dir)
    return emulators


def main(argv: list[str] | None = None) -> int:
    emulators = start_local()
    try:
        return experiments_main(argv)
    finally:
        emulators.stop()


if __name__ == "__main__":
    sys.exit(main())
