"""Multimodal message builders: a person's text and prepared images as one LangChain HumanMessage in the OpenAI
`image_url` form that Azure's Chat Completions accepts, with the detail kept; the checks that a deployment takes the
attached images; and the prompt estimate (tokens and cost, images priced with the deployment's own image rule) shown
before sending."""
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
from chains.tokens import REPLY_PRIMING, ROLES, TOKENS_PER_MESSAGE, count_text
from config.capabilities import ImageRule, family_capabilities
from config.catalog import Deployment

__all__ = ["ImagesNotAccepted", "PromptEstimate", "check_deployment_accepts", "estimate_draft", "estimate_prompt",
           "estimate_prompt_tokens", "human_message", "image_blocks", "message_image_tokens"]


class ImagesNotAccepted(ValueError):
    """Images were attached for a deployment whose catalog entry does not accept them, or more than it accepts."""


def human_message(text: str, images: Sequence[PreparedImage], message_id: str | None = None) -> HumanMessage:
    """Plain text without images; else a text block (when there is text) followed by one `image_url` block per image.
    LangChain's standard `image` block would drop `detail` on the way to Chat Completions: the OpenAI form keeps it."""
    if not images:
        return HumanMessage(text, id=message_id)
    blocks: list[dict] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "image_url", "image_url": {"url": i.data_url(), "detail": i.detail}} for i in images]
    return HumanMessage(blocks, id=message_id)


def check_deployment_accepts(deployment: Deployment, images: Sequence, alternatives: Iterable[Deployment] = ()) -> None:
    """Refuse images before anything is sent: for a text-only deployment, naming the deployments that do accept them;
    and more images in one message than the deployment's `max_images`."""
    if images and deployment.accepts_images and len(images) > deployment.max_images:
        extra = len(images) - deployment.max_images
        raise ImagesNotAccepted(f"{deployment.display_name} accepts at most {deployment.max_images} "
                                f"image{'s' if deployment.max_images != 1 else ''} per message, and {len(images)} are "
                                f"attached. Remove {extra} of them and send again; your text is kept.")
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


def estimate_prompt_tokens(messages: list[BaseMessage], model: str, image_rule=None) -> int:
    """Text with tiktoken plus images by the model's image rule (tile or patch; `image_rule` from the deployment's
    catalog row, else the model family's), per OpenAI's per-message recipe."""
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(ROLES.get(message.type, message.type), model) + count_text(message.text, model)
    return total + message_image_tokens(messages, image_rule or family_capabilities(model).image_rule)


def message_image_tokens(messages: Sequence[BaseMessage], rule: ImageRule | None = None) -> int:
    """The image `rule` (a deployment's `image_rule`; None: gpt-4o's tile rule, 85/170) over every image part, sized
    from the image data itself. A part without `detail: low` counts as high (we always send a resolved detail; Azure
    bills an explicit "auto" by the image, like high)."""
    return sum(image_tokens(*size, detail, rule) for size, detail in _image_parts(messages))


@dataclass(frozen=True)
class PromptEstimate:
    """What a prompt will cost before it is sent: all its tokens (text with tiktoken, images with the deployment's
    image rule: tiles or patches) and their price at the deployment's input rate."""

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
    """The prompt tokens Azure will bill for `messages` on `deployment` (OpenAI's per-message recipe with the model's
    encoding, images by the deployment's `image_rule`), and their cost."""
    parts = _image_parts(messages)
    pictures = sum(image_tokens(*size, detail, deployment.image_rule) for size, detail in parts)
    tokens = estimate_prompt_tokens(list(messages), deployment.model, deployment.image_rule)
    images = sum(len(image_blocks(m)) for m in messages)
    return PromptEstimate(tokens, pictures, images, deployment.cost(tokens, 0), deployment.display_name)


def estimate_draft(deployment: Deployment, text: str, images: Sequence[PreparedImage] = (),
                   history: Sequence[BaseMessage] = (), system_prompt: str | None = None) -> PromptEstimate:
    """The estimate of sending `text` and `images` now, after the system prompt and the conversation's memory, on
    `deployment` (its encoding, its image rule, its input price). The images should have been prepared with the same
    deployment's rule (`prepare_image(..., rule=deployment.image_rule)`): the estimate prices what they are."""
    system = [SystemMessage(system_prompt)] if system_prompt else []
    return estimate_prompt([*system, *history, human_message(text, images)], deployment)


def _image_parts(messages: Sequence[BaseMessage]) -> list[tuple[tuple[int, int], str]]:
    """((width, height), "low" or "high") of every image part with a readable data URL, in order."""
    parts = []
    for message in messages:
        for block in image_blocks(message):
            size = _data_url_size(block["image_url"].get("url", ""))
            if size is not None:
                parts.append((size, "low" if block["image_url"].get("detail") == "low" else "high"))
    return parts


def _data_url_size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:") or "," not in url:
        return None
    try:
        data = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as image:
            return image.size
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError):
        return None
