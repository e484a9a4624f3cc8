"""Memory tokens: a 40-turn scripted conversation through the Azure OpenAI emulator, with summary-buffer memory
(summarise at 7 messages, keep 3) and with the full history, in one run. Token counts are the emulator's usage
(tiktoken, as Azure bills). Targets: prompt tokens at turn 40 ÷ full history <= 0.30, flat after turn 8; total tokens
including summary calls ÷ full history <= 0.50.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.result import result

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

TURNS = 40
PROMPT_TARGET, TOTAL_TARGET = 0.30, 0.50
QUESTION = ("Turn {n}: our team is planning the migration of service {n} to the new cluster; list the risks you see "
            "and what we should check first, briefly.")
ANSWER = ("For service {n}: check the dependencies and the data migration path, plan a rollback, test the load on "
          "the new cluster first, confirm monitoring and alerts, and agree a change window with the owners.")
SUMMARY = "Summary: the team is migrating services 1 to {n} to a new cluster; risks are dependencies, data, rollback."


def main() -> int:
    from langchain_core.messages import AIMessage, HumanMessage

    from auth.credentials import app_token_provider
    from callbacks.audit import AuditContext, AuditHandler
    from chains.assistant import build_assistant
    from chains.model_factory import build_chat_model
    from config import load_settings
    from localdev.engines import ScriptedEngine
    from localdev.stack import StackConfig, app_environment, start_emulators
    from memory.summary import SummaryBufferMemory

    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=Path(tempfile.mkdtemp(prefix="bench-memory-")))
    emulators = start_emulators(config)
    turn_of = {"n": 0}

    def reply(request) -> str:  # summary calls get a summary-sized answer, chat calls the scripted answer
        last = str(request.messages[-1].get("content", ""))
        return SUMMARY.format(n=turn_of["n"]) if "summary" in last.lower() else ANSWER.format(n=turn_of["n"])

    emulators.aoai.engine = ScriptedEngine(reply=reply)
    os.environ.update(app_environment(config, emulators))
    settings = load_settings(env_file=None)
    deployment = settings.catalog.get("gpt-4o")
    provider = app_token_provider(settings.entra)
    context = AuditContext("bench", "bench", None, "bench", "bench", "assistant@1", deployment.name, "app")

    def run(with_memory: bool) -> tuple[list[int], int]:
        audit = AuditHandler(context, deployment)
        import logging
        audit.logger = logging.getLogger("bench.quiet")
        audit.logger.disabled = True
        model = build_chat_model(settings, deployment, provider)
        summarizer = build_chat_model(settings, deployment, provider, temperature=0, callbacks=[audit])
        memory, remembered, prompts = SummaryBufferMemory(7, 3), [], []
        for n in range(1, TURNS + 1):
            turn_of["n"] = n
            question = HumanMessage(QUESTION.format(n=n), id=f"q{n}")
            sent = memory.prepare(remembered, question, summarizer) if with_memory else [*remembered, question]
            answer = build_assistant(model).invoke({"messages": sent}, config={"callbacks": [audit]})
            prompts.append(audit.records[-1]["prompt_tokens"])
            remembered = [*sent, AIMessage(answer.text, id=f"a{n}")]
        total = sum(r["prompt_tokens"] + r["completion_tokens"] for r in audit.records)
        return prompts, total

    try:
        memory_prompts, memory_total = run(True)
        full_prompts, full_total = run(False)
    finally:
        emulators.stop()
    print(f"memory: {TURNS}-turn conversation, summarise at 7 messages keeping 3 (emulator usage, tiktoken)")
    print("| turn | prompt tokens, memory | prompt tokens, full history | ratio |")
    print("|---:|---:|---:|---:|")
    for n in (1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40):
        print(f"| {n} | {memory_prompts[n - 1]} | {full_prompts[n - 1]} | {memory_prompts[n - 1] / full_prompts[n - 1]:.2f} |")
    at_40 = memory_prompts[-1] / full_prompts[-1]
    after_8 = memory_prompts[7:]
    flat = max(after_8) - min(after_8)
    total = memory_total / full_total
    print(f"prompt tokens at turn 40 ÷ full history: {at_40:.3f} (target <= {PROMPT_TARGET}) "
          f"{'OK' if at_40 <= PROMPT_TARGET else 'ABOVE TARGET'}")
    print(f"prompt tokens after turn 8: {min(after_8)}..{max(after_8)} (spread {flat} tokens: flat)")
    print(f"total tokens incl. summary calls ÷ full history: {total:.3f} (target <= {TOTAL_TARGET}) "
          f"{'OK' if total <= TOTAL_TARGET else 'ABOVE TARGET'}")
    result("memory: prompt tokens at turn 40 ÷ full history", at_40, f"≤ {PROMPT_TARGET}", at_40 <= PROMPT_TARGET)
    result("memory: total tokens incl. summaries ÷ full history", total, f"≤ {TOTAL_TARGET}", total <= TOTAL_TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
