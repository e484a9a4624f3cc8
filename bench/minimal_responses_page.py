"""The baseline page for bench/render.py's Responses API part: the smallest Streamlit chat that streams a reasoning
model's summary and then its answer with ChatOpenAI on Azure's v1 API (`use_responses_api=True`, standard content
blocks with `output_version="v1"`), on the same endpoint and app credential as the product, deployment
gpt-5-mini-thinking. The summary's text blocks go to one markdown element, the answer's text blocks to the next, each
redrawn on every block (no grouping). No sign-in, memory, audit, sidebar or collapsing step: what the product's page is
measured against.

`streamlit run bench/minimal_responses_page.py` with the app's environment (bench/render.py starts it)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st
from langchain_openai import ChatOpenAI

from auth.credentials import app_token_provider
from config import load_settings


@st.cache_resource
def chat_model() -> ChatOpenAI:
    settings = load_settings()
    return ChatOpenAI(base_url=settings.azure_openai.v1_base_url, api_key=app_token_provider(settings.entra),
                      model="gpt-5-mini-thinking", use_responses_api=True,
                      reasoning={"effort": "medium", "summary": "auto"}, output_version="v1", stream_usage=True)


messages = st.session_state.setdefault("messages", [])
for message in messages:
    with st.chat_message(message["role"]):
        st.markdown(message["content"])
if question := st.chat_input("Message"):
    messages.append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        summary_slot, answer_slot = st.empty(), st.empty()
        summary = answer = ""
        for chunk in chat_model().stream([(m["role"], m["content"]) for m in messages]):
            for block in chunk.content if isinstance(chunk.content, list) else ():
                if block.get("type") == "reasoning" and block.get("reasoning"):
                    summary += block["reasoning"]
                    summary_slot.markdown(summary)
                elif block.get("type") == "text" and block.get("text"):
                    answer += block["text"]
                    answer_slot.markdown(answer)
    messages.append({"role": "assistant", "content": answer})
