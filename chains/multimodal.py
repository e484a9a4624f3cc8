"""Multimodal message builders: a person's text and prepared images as one LangChain HumanMessage in the OpenAI
`image_url` form that Azure's Chat Completions accepts, with the detail kept; and the prompt estimate (tokens and cost)
shown before sending."""
from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from PIL import Image

from chains.images import ALLOWED_FORMATS, PreparedImage, image_tokens
from chains.tokens import estimate_prompt_tokens
from config.catalog import Deployment

__all__ = ["ImagesNotAccepted", "PromptEstimate", "check_deployment_accepts", "estimate_draft", "estimate_prompt",
           "estimate_prompt_tokens", "human_message", "image_blocks", "message_image_tokens"]


class ImagesNotAccepted(ValueError):
    """Images were attached for a deployment whose catalog entry does not accept them."""


def human_message(text: str, images: Sequence[PreparedImage], message_id: str | None = None) -> HumanMessage:
    """Plain text without images; else a text block (when there is text) followed by one `image_url` block per image.
    LangChain's standard `image` block would drop `detail` on the way to Chat Completions: the OpenAI form keeps it."""
    if not images:
        return HumanMessage(text, id=message_id)
    blocks: list[dict] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "image_url", "image_url": {"url": i.data_url(), "detail": i.detail}} for i in images]
    return HumanMessage(blocks, id=message_id)


def check_deployment_accepts(deployment: Deployment, images: Sequence, alternatives: Iterable[Deployment] = ()) -> None:
    """Refuse images for a text-only deployment before anything is sent, naming the deployments that do accept them."""
    if images and not deployment.accepts_images:
        vision = [d.display_name for d in alternatives if d.accepts_images]
        pick = " or ".join(vision) if vision else "a deployment that accepts images (for example gpt-4o)"
        count = f"{len(images)} image{'s' if len(images) != 1 else ''}"
        raise ImagesNotAccepted(f"{deployment.display_name} does not accept images, and {count} "
                                f"{'are' if len(images) != 1 else 'is'} attached. Pick {pick} and send again; "
                                "your text is kept.")


def image_blocks(message: BaseMessage) -> list[dict]:
    content = message.content if isinstance(message.content, list) else []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "image_url"]


def message_image_tokens(messages: Sequence[BaseMessage]) -> int:
    """Azure's tile formula over every image part, sized from the image data itself. A part without `detail: low`
    counts as high (we always send a resolved detail; Azure bills an explicit "auto" by the image, like high)."""
    total = 0
    for message in messages:
        for block in image_blocks(message):
            detail = block["image_url"].get("detail", "auto")
            size = _data_url_size(block["image_url"].get("url", ""))
            if size is None:
                continue
            total += image_tokens(*size, "low" if detail == "low" else "high")
    return total


@dataclass(frozen=True)
class PromptEstimate:
    """What a prompt will cost before it is sent: all its tokens (text with tiktoken, images with the tile formula)
    and their price at the deployment's input rate."""

    tokens: int
    image_tokens: int
    images: int
    cost: Decimal
    deployment: str

    def summary(self) -> str:
        pictures = (f", {self.image_tokens} of them for {self.images} image{'s' if self.images != 1 else ''}"
                    if self.images else "")
        return f"≈{self.tokens} prompt tokens{pictures}, ≈${self.cost:.6f} on {self.deployment}"


def estimate_prompt(messages: Sequence[BaseMessage], deployment: Deployment) -> PromptEstimate:
    tokens = estimate_prompt_tokens(list(messages), deployment.model)
    images = sum(len(image_blocks(m)) for m in messages)
    return PromptEstimate(tokens, message_image_tokens(messages), images, deployment.cost(tokens, 0),
                          deployment.display_name)


def estimate_draft(deployment: Deployment, text: str, images: Sequence[PreparedImage] = (),
                   history: Sequence[BaseMessage] = (), system_prompt: str | None = None) -> PromptEstimate:
    """The estimate of sending `text` and `images` now, after the system prompt and the conversation's memory."""
    system = [SystemMessage(system_prompt)] if system_prompt else []
    return estimate_prompt([*system, *history, human_message(text, images)], deployment)


def _data_url_size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:") or "," not in url:
        return None
    try:
        data = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as image:
            return image.size
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError):
        return None
