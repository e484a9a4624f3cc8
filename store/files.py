"""Files of conversations (images and documents), content-addressed on disk (never base64 in the database), and the
swap between a stored image reference and the data URL the model needs."""
from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from langchain_core.messages import BaseMessage

EXTENSIONS = "png|jpg|pdf|docx|txt|md|csv|html"
REFERENCE = re.compile(rf"^stored:([0-9a-f]{{64}})\.({EXTENSIONS})$")
REFERENCES_IN_TEXT = re.compile(rf"stored:[0-9a-f]{{64}}\.(?:{EXTENSIONS})")
MIME = {"png": "image/png", "jpg": "image/jpeg"}


class FileStore:
    """Attached images and documents, content-addressed (`<sha256>.<ext>`) in one folder (`APP_DATA_DIR/images/`, its
    name from when it held only images: existing data stays where it is)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, sha256: str, extension: str, data: bytes) -> str:
        """Store once (same content, same name: retries are harmless); returns the reference kept in messages."""
        path = self.folder / f"{sha256}.{extension}"
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(path)  # atomic: a crash never leaves half an image under the real name
        return f"stored:{sha256}.{extension}"

    def save_data_url(self, url: str) -> str | None:
        """A `data:image/...;base64,` URL stored as a file; returns its reference."""
        header, _, payload = url.partition(",")
        extension = "png" if header.startswith("data:image/png") else "jpg"
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError:
            return None
        return self.save(hashlib.sha256(data).hexdigest(), extension, data)

    def load(self, reference: str) -> bytes | None:
        match = REFERENCE.match(reference)
        if not match:
            return None
        path = self.folder / f"{match.group(1)}.{match.group(2)}"
        return path.read_bytes() if path.exists() else None

    def remove(self, reference: str) -> bool:
        """Delete the file behind a reference (when its last conversation is deleted); False if it was not there."""
        match = REFERENCE.match(reference)
        if not match:
            return False
        path = self.folder / f"{match.group(1)}.{match.group(2)}"
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def data_url(self, reference: str) -> str | None:
        data = self.load(reference)
        extension = REFERENCE.match(reference).group(2) if data is not None else None
        if extension not in MIME:
            return None
        return f"data:{MIME[extension]};base64,{base64.b64encode(data).decode()}" if data is not None else None


def _swap(messages: list[BaseMessage], change) -> list[BaseMessage]:
    swapped = []
    for message in messages:
        if isinstance(message.content, list):
            content = []
            for block in message.content:
                if isinstance(block, dict) and block.get("type") == "image_url":
                    url = change(block["image_url"].get("url", ""))
                    if url is None:
                        continue  # a missing file: leave the image out rather than fail the whole conversation
                    block = {**block, "image_url": {**block["image_url"], "url": url}}
                content.append(block)
            message = message.model_copy(update={"content": content})
        swapped.append(message)
    return swapped


def to_references(messages: list[BaseMessage], files: FileStore) -> list[BaseMessage]:
    """Data URLs stored as files and replaced by their references, for the database."""
    return _swap(messages, lambda url: files.save_data_url(url) if url.startswith("data:") else url)


def to_data_urls(messages: list[BaseMessage], files: FileStore) -> list[BaseMessage]:
    return _swap(messages, lambda url: files.data_url(url) if url.startswith("stored:") else url)


def references_in(text: str | None) -> set[str]:
    """Every `stored:` image reference mentioned in a stored column (memory JSON or attachments)."""
    return set(REFERENCES_IN_TEXT.findall(text or ""))
