"""The baseline page for bench/render.py: the smallest Streamlit chat that streams AzureChatOpenAI, as Streamlit's and
LangChain's own examples write it (st.chat_input, st.write_stream over model.stream), on the same endpoint, deployment
and app credential as the product. No sign-in, memory, audit or sidebar: what the product's page is measured against.

`streamlit run bench/minimal_page.py` with the app's environment (bench/render.py starts it)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st
from langchain_openai import AzureChatOpenAI

from auth.credentials import app_token_provider
from config import load_settings


@st.cache_resource
def chat_model() -> AzureChatOpenAI:
    settings = load_settings()
    return AzureChatOpenAI(azure_endpoint=settings.azure_openai.endpoint, azure_deployment="gpt-4o",
                           api_version=settings.azure_openai.api_version,
                           azure_ad_token_provider=app_token_provider(settings.entra))


messages = st.session_state.setdefault("messages", [])
for message in messages:
    with st.chat_message(message["role"]):
        st.markdown(message["content"])
if question := st.chat_input("Message"):
    messages.append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        answer = st.write_stream(chunk.content for chunk in chat_model().stream(
            [(m["role"], m["content"]) for m in messages]))
    messages.append({"role": "assistant", "content": answer})
