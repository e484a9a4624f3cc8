"""What the model remembers of a conversation, and (later) where conversations are stored."""
