"""Documents attached to conversations: text extraction, passages, embeddings, retrieval."""
