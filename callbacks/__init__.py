"""LangChain callback handlers: token usage and timing of every model call (audit and page streaming build on it)."""
