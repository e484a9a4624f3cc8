"""What each model family accepts on Azure OpenAI's Chat Completions, as of December 2026: sampling parameters, reasoning
efforts, the answer-limit parameter, the image token rule, images per request and streaming.

The catalog fills each deployment's capabilities from the family of its `model` (a row can stay short) and lets a row
override any of them. The Azure OpenAI emulator (localdev/aoai.py) enforces the family rules themselves, ignoring the
catalog's overrides, the way Azure does: a catalog that claims too much gets Azure's 400 in the tests too.

Sources: Azure's "reasoning models" how-to (unsupported parameters, efforts per model, streaming), OpenAI's "Images and
vision" guide (tile and patch rules), Azure's model retirement table (dates in config/deployments.toml).
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# Chat Completions parameters a reasoning model refuses (Azure answers 400 unsupported_parameter / unsupported_value).
SAMPLING_PARAMETERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs",
                       "logit_bias")


class TileRule(BaseModel):
    """gpt-4o-class images: low costs `base_tokens`; high fits `max_side`², then the short side to `short_side`, and
    costs `base_tokens + tile_tokens` per 512-px tile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["tile"] = "tile"
    base_tokens: int = Field(gt=0)
    tile_tokens: int = Field(gt=0)
    max_side: int = Field(2048, gt=0)
    short_side: int = Field(768, gt=0)
    low_side: int = Field(512, gt=0)


class PatchRule(BaseModel):
    """Patch-based images (gpt-5-mini, gpt-5.4*, o4-mini, ...): fit `max_side`², count 32-px patches, shrink to at most
    `patch_budget` patches, bill ceil(patches × multiplier). Low detail uses its own side and budget where the model
    has them (gpt-5.5: 512 px), else the same as high."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["patch"] = "patch"
    patch_budget: int = Field(gt=0)
    multiplier: Decimal = Field(gt=0)
    max_side: int = Field(2048, gt=0)
    low_patch_budget: int | None = Field(None, gt=0)
    low_max_side: int | None = Field(None, gt=0)


ImageRule = Annotated[TileRule | PatchRule, Field(discriminator="kind")]


class Capabilities(BaseModel):
    """What one model family accepts. `reasoning`: hidden reasoning tokens billed as output, `max_completion_tokens`
    only (max_tokens refused), and an answer can come back empty at `finish_reason: length`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reasoning: bool = False
    accepts_sampling: bool = True  # temperature, top_p, penalties, logprobs, logit_bias
    reasoning_efforts: tuple[str, ...] = ()  # values of reasoning_effort it accepts; () none may be sent
    default_effort: str | None = None  # what the app sends when nobody chose (Azure's own default for the model)
    accepts_images: bool = False
    image_rule: ImageRule | None = None
    max_images: int = Field(10, gt=0)
    streaming: bool = True
    # Which API answers: "chat_completions", or "responses" (the Responses API on the v1 endpoint: reasoning summaries,
    # and the only API of the pro and codex models).
    api: Literal["chat_completions", "responses"] = "chat_completions"
    responses_only: bool = False  # no Chat Completions at all (gpt-5-pro, gpt-5.4-pro, the codex models)
    reasoning_summaries: bool = False  # the Responses API can stream a summary of the model's reasoning

    @model_validator(mode="after")
    def _consistent(self) -> "Capabilities":
        unknown = [e for e in self.reasoning_efforts if e not in EFFORTS]
        if unknown:
            raise ValueError(f"reasoning_efforts has unknown values {unknown}; known: {', '.join(EFFORTS)}")
        if self.default_effort is not None and self.default_effort not in self.reasoning_efforts:
            raise ValueError(f"default_effort {self.default_effort!r} is not one of reasoning_efforts "
                             f"({', '.join(self.reasoning_efforts) or 'none offered'})")
        if self.reasoning_efforts and self.default_effort is None:
            raise ValueError("reasoning_efforts needs a default_effort (one of them)")
        if self.reasoning and self.accepts_sampling:
            raise ValueError("a reasoning model takes no sampling parameters: set accepts_sampling = false")
        if self.accepts_images and self.image_rule is None:
            raise ValueError("accepts_images = true needs an image_rule (tile or patch) for this model")
        if self.responses_only and self.api != "responses":
            raise ValueError('this model answers only on the Responses API: set api = "responses"')
        if self.reasoning_summaries and not self.reasoning:
            raise ValueError("reasoning_summaries needs a reasoning model")
        return self


def _tile(base: int, tile: int) -> TileRule:
    return TileRule(base_tokens=base, tile_tokens=tile)


def _patch(budget: int, multiplier: str, **low) -> PatchRule:
    return PatchRule(patch_budget=budget, multiplier=Decimal(multiplier), **low)


_GPT5 = ("minimal", "low", "medium", "high")
_GPT51 = ("none", "low", "medium", "high")
_O = ("low", "medium", "high")
_CLASSIC = dict(reasoning=False, accepts_sampling=True)
_REASONING = dict(reasoning=True, accepts_sampling=False, reasoning_summaries=True)
_RESPONSES_ONLY = dict(api="responses", responses_only=True)

# Families, most specific pattern first; the first whose pattern matches the model name (case-insensitive) applies.
FAMILIES: tuple[tuple[str, Capabilities], ...] = (
    (r"gpt-35-turbo|gpt-3\.5-turbo", Capabilities(**_CLASSIC)),
    (r"gpt-4o-mini", Capabilities(**_CLASSIC, accepts_images=True, image_rule=_tile(2833, 5667))),
    (r"gpt-4o|gpt-4\.1$|gpt-4\.5", Capabilities(**_CLASSIC, accepts_images=True, image_rule=_tile(85, 170))),
    (r"gpt-4\.1-mini", Capabilities(**_CLASSIC, accepts_images=True, image_rule=_patch(6144, "1.62"))),
    (r"gpt-4\.1-nano", Capabilities(**_CLASSIC, accepts_images=True, image_rule=_patch(1536, "2.46"))),
    (r"gpt-5-mini", Capabilities(**_REASONING, reasoning_efforts=_GPT5, default_effort="medium", accepts_images=True,
                                 image_rule=_patch(1536, "1.2"))),
    (r"gpt-5-nano", Capabilities(**_REASONING, reasoning_efforts=_GPT5, default_effort="medium", accepts_images=True,
                                 image_rule=_patch(1536, "1.5"))),
    (r"gpt-5-pro", Capabilities(**_REASONING, **_RESPONSES_ONLY, reasoning_efforts=("high",), default_effort="high",
                                accepts_images=True, image_rule=_tile(70, 140), streaming=False)),
    (r"gpt-5\.4-pro", Capabilities(**_REASONING, **_RESPONSES_ONLY, reasoning_efforts=("medium", "high", "xhigh"),
                                   default_effort="high", accepts_images=True,
                                   image_rule=_patch(2500, "1.2", low_patch_budget=6144, low_max_side=2048))),
    (r"gpt-5(\.\d)?-codex|codex-mini", Capabilities(**_REASONING, **_RESPONSES_ONLY, reasoning_efforts=_O,
                                                     default_effort="medium")),
    (r"gpt-5-chat|gpt-5\.\d-chat", Capabilities(**_CLASSIC, accepts_images=True, image_rule=_tile(70, 140))),
    (r"gpt-5\.1", Capabilities(**_REASONING, reasoning_efforts=_GPT51, default_effort="none", accepts_images=True,
                               image_rule=_tile(70, 140))),
    (r"gpt-5\.2", Capabilities(**_REASONING, reasoning_efforts=_GPT51, default_effort="none", accepts_images=True,
                               image_rule=_patch(6144, "1.2"))),
    (r"gpt-5\.5", Capabilities(**_REASONING, reasoning_efforts=(*_GPT51, "xhigh"), default_effort="medium",
                               accepts_images=True, image_rule=_patch(2500, "1.2", low_max_side=512))),
    (r"gpt-5\.4", Capabilities(**_REASONING, reasoning_efforts=(*_GPT51, "xhigh"), default_effort="none",
                               accepts_images=True,
                               image_rule=_patch(2500, "1.2", low_patch_budget=6144, low_max_side=2048))),
    (r"gpt-5", Capabilities(**_REASONING, reasoning_efforts=_GPT5, default_effort="medium", accepts_images=True,
                            image_rule=_tile(70, 140))),
    (r"model-router", Capabilities(**_REASONING, accepts_images=True, image_rule=_tile(70, 140))),
    (r"o3-mini", Capabilities(**_REASONING, reasoning_efforts=_O, default_effort="medium")),
    (r"o4-mini", Capabilities(**_REASONING, reasoning_efforts=_O, default_effort="medium", accepts_images=True,
                              image_rule=_patch(1536, "1.72"))),
    (r"o1|o3", Capabilities(**_REASONING, reasoning_efforts=_O, default_effort="medium", accepts_images=True,
                            image_rule=_tile(75, 150))),
)
UNKNOWN_FAMILY = Capabilities(**_CLASSIC)


def family_capabilities(model: str) -> Capabilities:
    """The capabilities of the family `model` belongs to (a model we do not know: a classic chat model, text only)."""
    name = model.lower()
    for pattern, capabilities in FAMILIES:
        if re.match(pattern, name):
            return capabilities
    return UNKNOWN_FAMILY
