"""Model factory and the LangChain chains that answer in the chat."""
