"""Images per model: each family's image rule (tiles or patches) checked against the reference table and its worked
examples; the image prepared for a deployment is the size its model processes (no 768-px short side on a patch
model); and for every deployment of the local tenant that accepts images, at every detail and for sizes from an icon to
a panorama, the app's estimate equals what the emulator bills (localdev/prompt_tokens.py, written separately) for the
image actually sent."""
from __future__ import annotations

import io
import math
from decimal import Decimal

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from PIL import Image

from chains.images import detail_size, image_tokens, prepare_image, resolve_detail
from chains.multimodal import estimate_prompt, human_message, message_image_tokens
from config.capabilities import PatchRule, TileRule, family_capabilities
from config.catalog import load_catalog
from localdev import LOCAL_CATALOG_FILE
from localdev.prompt_tokens import count_prompt_tokens, image_part_tokens, image_rule_for

CATALOG = load_catalog(LOCAL_CATALOG_FILE)
VISION = [d for d in CATALOG.deployments if d.accepts_images]
SIZES = [(300, 200), (1024, 768), (1024, 1024), (4000, 3000), (800, 3000), (2049, 769), (5000, 100)]


def png(size: tuple[int, int], colour="teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


_SOURCES: dict[tuple[int, int], bytes] = {}


def source(size: tuple[int, int]) -> bytes:
    if size not in _SOURCES:
        _SOURCES[size] = png(size)
    return _SOURCES[size]


def sent_size(prepared) -> tuple[int, int]:
    return Image.open(io.BytesIO(prepared.data)).size


def rule_of(model: str):
    return family_capabilities(model).image_rule


def test_every_local_deployment_that_takes_images_is_covered():
    assert [d.name for d in VISION] == ["gpt-5-mini", "gpt-5.1", "gpt-5.4-nano", "o4-mini", "gpt-4o", "gpt-4o-mini"]
    assert all(d.image_rule == rule_of(d.model) for d in VISION)  # no row overrides its family's rule


# --- the family table against the reference (OpenAI's "Images and vision" guide, 2026) ------------------------------

@pytest.mark.parametrize("model, base, tile", [("gpt-4o", 85, 170), ("gpt-4.1", 85, 170), ("gpt-4o-mini", 2833, 5667),
                                               ("gpt-5", 70, 140), ("gpt-5.1", 70, 140), ("o1", 75, 150),
                                               ("o3", 75, 150)])
def test_tile_families(model, base, tile):
    assert rule_of(model) == TileRule(base_tokens=base, tile_tokens=tile, max_side=2048, short_side=768, low_side=512)


@pytest.mark.parametrize("model, budget, multiplier, low_budget, low_side", [
    ("gpt-5-mini", 1536, "1.2", None, None), ("gpt-5-nano", 1536, "1.5", None, None),
    ("o4-mini", 1536, "1.72", None, None), ("gpt-4.1-nano", 1536, "2.46", None, None),
    ("gpt-4.1-mini", 6144, "1.62", None, None), ("gpt-5.2", 6144, "1.2", None, None),
    ("gpt-5.4", 2500, "1.2", 6144, 2048), ("gpt-5.4-nano", 2500, "1.2", 6144, 2048),
    ("gpt-5.5", 2500, "1.2", None, 512)])
def test_patch_families(model, budget, multiplier, low_budget, low_side):
    assert rule_of(model) == PatchRule(patch_budget=budget, multiplier=Decimal(multiplier), max_side=2048,
                                       low_patch_budget=low_budget, low_max_side=low_side)


# --- the reference's worked examples ---------------------------------------------------------------------------------

def test_gpt_4o_1024_square_high_is_4_tiles_765():
    assert detail_size(1024, 1024, "high", rule_of("gpt-4o")) == (768, 768)
    assert image_tokens(1024, 1024, "high", rule_of("gpt-4o")) == image_tokens(1024, 1024, "high") == 765
    prepared = prepare_image("a.png", png((1024, 1024)), "high", rule=CATALOG.get("gpt-4o").image_rule)
    assert (prepared.width, prepared.height, prepared.tokens) == (768, 768, 765)


def test_gpt_5_mini_keeps_1024x768_and_bills_922():
    prepared = prepare_image("a.png", png((1024, 768)), "high", rule=CATALOG.get("gpt-5-mini").image_rule)
    assert (prepared.width, prepared.height) == sent_size(prepared) == (1024, 768)  # no 768-px short side
    assert prepared.tokens == math.ceil(32 * 24 * Decimal("1.2")) == 922


def test_gpt_5_4_high_shrinks_2048_square_to_2500_patches_3000():
    rule = rule_of("gpt-5.4")
    assert detail_size(2048, 2048, "high", rule) == (1600, 1600)
    assert image_tokens(2048, 2048, "high", rule) == 3000
    assert image_tokens(1024, 1024, "high", rule) == 1229
    prepared = prepare_image("a.png", png((2048, 2048)), "high", rule=rule)
    assert (prepared.width, prepared.height, prepared.tokens) == (1600, 1600, 3000)


def test_a_gpt_4_1_mini_like_rule_bills_1024_square_1659():
    rule = PatchRule(patch_budget=1536, multiplier=Decimal("1.62"))
    assert image_tokens(1024, 1024, "high", rule) == 1659
    assert image_tokens(1024, 1024, "high", rule_of("gpt-4.1-mini")) == 1659


def test_the_patch_shrink_follows_openais_formula():
    rule = rule_of("gpt-5-mini")  # 4000×3000 fits 2048×1536 = 3072 patches, over 1536
    s = math.sqrt(32 * 32 * 1536 / (2048 * 1536))
    s2 = s * min(math.floor(2048 * s / 32) / (2048 * s / 32), math.floor(1536 * s / 32) / (1536 * s / 32))
    expected = (math.floor(2048 * s2), math.floor(1536 * s2))
    assert detail_size(4000, 3000, "high", rule) == expected == (1408, 1056)
    assert image_tokens(4000, 3000, "high", rule) == math.ceil(44 * 33 * Decimal("1.2")) == 1743


def test_gpt_5_4_low_has_a_bigger_budget_and_can_cost_more_than_high_so_auto_is_high():
    rule = rule_of("gpt-5.4")
    assert detail_size(2048, 2048, "low", rule) == (2048, 2048)
    assert image_tokens(2048, 2048, "low", rule) == math.ceil(4096 * Decimal("1.2")) > image_tokens(2048, 2048, "high",
                                                                                                      rule)
    assert resolve_detail("auto", 2048, 2048, rule) == "high"


def test_gpt_5_5_low_fits_512():
    rule = rule_of("gpt-5.5")
    assert detail_size(1024, 1024, "low", rule) == (512, 512)
    assert image_tokens(1024, 1024, "low", rule) == math.ceil(256 * Decimal("1.2"))
    prepared = prepare_image("a.png", png((1024, 1024)), "low", rule=rule)
    assert (prepared.width, prepared.height, prepared.detail) == (512, 512, "low")
    assert resolve_detail("auto", 1024, 1024, rule) == "high"  # low would be fewer pixels, not the same ones


def test_auto_on_a_patch_rule_is_low_only_when_low_sees_the_same_pixels_for_less():
    cheaper_low = PatchRule(patch_budget=1536, multiplier=Decimal("1.2"), low_patch_budget=256)
    assert resolve_detail("auto", 400, 400, cheaper_low) == "high"  # 169 patches either way: same price
    assert resolve_detail("auto", 1024, 1024, cheaper_low) == "high"  # low would shrink it
    same_pixels_cheaper = PatchRule(patch_budget=1536, multiplier=Decimal("1.2"))
    assert resolve_detail("auto", 300, 200, same_pixels_cheaper) == "high"
    assert resolve_detail("auto", 300, 200) == "low"  # gpt-4o: 85 instead of 255 for the same pixels


# --- the prepared image is what the model keeps ----------------------------------------------------------------------

@pytest.mark.parametrize("deployment", [d.name for d in VISION if isinstance(d.image_rule, PatchRule)])
@pytest.mark.parametrize("size, kept", [((1024, 768), (1024, 768)), ((1024, 1024), (1024, 1024)),
                                        ((1200, 900), (1200, 900)), ((800, 3000), (546, 2048))])
def test_patch_models_are_not_reduced_to_a_768_short_side(deployment, size, kept):
    """All within every local patch model's budget (at most 1536 patches): only the 2048-px fit applies, where
    gpt-4o's rule sends 1024×1024 as 768×768 and 1200×900 as 1024×768."""
    rule = CATALOG.get(deployment).image_rule
    prepared = prepare_image("a.png", source(size), "high", rule=rule)
    assert (prepared.width, prepared.height) == kept == detail_size(*size, "high", rule) == sent_size(prepared)
    assert prepared.tokens == math.ceil(math.ceil(kept[0] / 32) * math.ceil(kept[1] / 32) * rule.multiplier)


@pytest.mark.parametrize("deployment", [d.name for d in VISION])
@pytest.mark.parametrize("size", SIZES)
def test_the_prepared_size_is_a_fixed_point_of_the_rule(deployment, size):
    rule = CATALOG.get(deployment).image_rule
    for detail in ("low", "high"):
        once = detail_size(*size, detail, rule)
        assert detail_size(*once, detail, rule) == once
        assert image_tokens(*once, detail, rule) == image_tokens(*size, detail, rule)
        assert once[0] <= size[0] and once[1] <= size[1]  # never upscaled


# --- estimate == emulator billing, for every catalog model that takes images -----------------------------------------

@pytest.mark.parametrize("detail", ["low", "high", "auto"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("deployment", [d.name for d in VISION])
def test_the_estimate_equals_what_the_emulator_bills(deployment, size, detail):
    chosen = CATALOG.get(deployment)
    prepared = prepare_image("a.png", source(size), detail, rule=chosen.image_rule)
    assert prepared.detail in ("low", "high")
    message = human_message("What is this?", [prepared])
    block = message.content[1]
    assert block["image_url"]["detail"] == prepared.detail  # the resolved detail is what is sent

    billed = image_part_tokens(block, image_rule_for(chosen.model))  # the emulator, from the image it receives
    assert prepared.tokens == message_image_tokens([message], chosen.image_rule) == billed

    messages = [SystemMessage("You are helpful."), HumanMessage("hi"), message]
    wire = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "hi"},
            {"role": "user", "content": message.content}]
    estimate = estimate_prompt(messages, chosen)
    assert estimate.image_tokens == prepared.tokens and estimate.images == 1
    assert estimate.tokens == count_prompt_tokens(wire, chosen.model)


def test_the_emulator_bills_by_the_models_family_and_the_detail_sent():
    prepared = prepare_image("a.png", png((1024, 768)), "high", rule=rule_of("gpt-5-mini"))
    block = human_message("", [prepared]).content[0]
    text_only = [{"role": "user", "content": []}]
    wire = [{"role": "user", "content": [block]}]
    for model, tokens in [("gpt-5-mini", 922), ("gpt-5-nano", math.ceil(768 * Decimal("1.5"))),
                          ("o4-mini", math.ceil(768 * Decimal("1.72"))), ("gpt-4o", 765),
                          ("gpt-4o-mini", 2833 + 5667 * 4), ("gpt-5.1", 70 + 140 * 4), ("o3", 75 + 150 * 4)]:
        assert count_prompt_tokens(wire, model) - count_prompt_tokens(text_only, model) == tokens, model
    low = {**block, "image_url": {**block["image_url"], "detail": "low"}}
    assert image_part_tokens(low, rule_of("gpt-4o")) == 85
    assert image_part_tokens(low, rule_of("gpt-5-mini")) == 922  # gpt-5-mini has no low of its own
    assert image_part_tokens(low, rule_of("gpt-5.5")) == math.ceil(16 * 12 * Decimal("1.2"))  # 512×384


def test_a_product_that_priced_with_the_wrong_rule_would_show():
    """The same image estimated with gpt-4o's rule (the old code path) does not match gpt-5-mini's bill."""
    prepared = prepare_image("a.png", png((1024, 768)), "high", rule=CATALOG.get("gpt-5-mini").image_rule)
    message = human_message("x", [prepared])
    assert message_image_tokens([message]) != image_part_tokens(message.content[1], image_rule_for("gpt-5-mini"))


def test_the_emulator_reports_the_image_part_of_its_count():
    from localdev.prompt_tokens import count_image_tokens

    rule = rule_of("gpt-5-mini")
    images = [prepare_image("a.png", png((1024, 768)), "high", rule=rule),
              prepare_image("b.png", png((300, 200)), "low", rule=rule)]
    wire = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": human_message("Compare.", images).content}]
    assert count_image_tokens(wire, "gpt-5-mini") == 922 + 84 == sum(i.tokens for i in images)
    text_only = [wire[0], {"role": "user", "content": [wire[1]["content"][0]]}]
    assert count_prompt_tokens(wire, "gpt-5-mini") - count_prompt_tokens(text_only, "gpt-5-mini") == 922 + 84
    assert count_image_tokens(text_only, "gpt-5-mini") == 0
