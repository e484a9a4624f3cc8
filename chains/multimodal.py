"""Multimodal message builders: a person's text and prepared images as one LangChain HumanMessage in the OpenAI
`image_url` form that Azure's Chat Completions accepts, with the detail kept."""
from __future__ import annotations

import base64
import binascii
import io

from langchain_core.messages import BaseMessage, HumanMessage
from PIL import Image

from chains.images import PreparedImage, image_tokens
from config.catalog import Deployment


class ImagesNotAccepted(ValueError):
    """Images were attached for a deployment whose catalog entry does not accept them."""


def human_message(text: str, images: list[PreparedImage], message_id: str | None = None) -> HumanMessage:
    if not images:
        return HumanMessage(text, id=message_id)
    blocks: list[dict] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "image_url", "image_url": {"url": image.data_url(), "detail": image.detail}} for image in images]
    return HumanMessage(blocks, id=message_id)


def check_deployment_accepts(deployment: Deployment, images: list) -> None:
    if images and not deployment.accepts_images:
        vision = "a deployment that accepts images (for example gpt-4o)"
        raise ImagesNotAccepted(f"{deployment.display_name} does not accept images. Pick {vision} and send again; "
                                "your text is kept.")


def image_blocks(message: BaseMessage) -> list[dict]:
    content = message.content if isinstance(message.content, list) else []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "image_url"]


def message_image_tokens(messages: list[BaseMessage]) -> int:
    """Azure's tile formula over every image part, sized from the image data itself."""
    total = 0
    for message in messages:
        for block in image_blocks(message):
            detail = block["image_url"].get("detail", "auto")
            size = _data_url_size(block["image_url"].get("url", ""))
            if size is None:
                continue
            total += image_tokens(*size, "low" if detail == "low" else "high")
    return total


def _data_url_size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:") or "," not in url:
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
            return image.size
    except (binascii.Error, OSError, ValueError):
        return None
