"""The deployment catalog: the shipped file is valid, and a bad entry is named in the error."""
from decimal import Decimal

import pytest

from config import ConfigError, load_catalog
from localdev import LOCAL_CATALOG_FILE


def test_shipped_catalog_lists_the_required_models():
    catalog = load_catalog(LOCAL_CATALOG_FILE)
    models = {d.model for d in catalog.deployments}
    assert {"gpt-4o", "gpt-4o-mini", "gpt-35-turbo"} <= models
    assert catalog.get("gpt-4o").accepts_images and not catalog.get("gpt-35-turbo").accepts_images
    for deployment in catalog.deployments:
        assert 0 < deployment.max_output_tokens < deployment.context_window


def test_cost_uses_the_prices_per_million_tokens():
    gpt4o = load_catalog(LOCAL_CATALOG_FILE).get("gpt-4o")
    assert gpt4o.cost(1_000_000, 0) == gpt4o.input_price_per_1m
    assert gpt4o.cost(2000, 1000) == Decimal("2000") * Decimal("2.50") / 1_000_000 + Decimal("1000") * Decimal("10.00") / 1_000_000


ENTRY = """
[[deployment]]
name = "{name}"
model = "gpt-4o"
accepts_images = true
context_window = {context}
max_output_tokens = {output}
input_price_per_1m = "2.5"
output_price_per_1m = "10"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ENTRY.format(name="big", context=1000, output=4000), "deployment 'big'"),
        (ENTRY.format(name="zero", context=1000, output=0), "deployment 'zero' field max_output_tokens"),
        (ENTRY.format(name="a", context=10, output=1) * 2, "repeated: a"),
        ('default = "nope"\n' + ENTRY.format(name="a", context=10, output=1), "'nope' is not one of the deployments"),
        ("[[deployment]\nname=", "not valid TOML"),
        ("", "lists no deployment"),
    ],
)
def test_invalid_catalog_names_the_entry(tmp_path, text, expected):
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_catalog(path)
    assert expected in str(caught.value) and str(path) in str(caught.value)


def test_unknown_deployment_lookup_says_which_exist():
    with pytest.raises(KeyError, match="gpt-4o-mini"):
        load_catalog(LOCAL_CATALOG_FILE).get("gpt-5")


REASONING_ENTRY = """
[[deployment]]
name = "mini"
model = "{model}"
context_window = 400000
max_output_tokens = 128000
input_price_per_1m = "0.25"
output_price_per_1m = "2"
{extra}
"""


@pytest.mark.parametrize(
    ("model", "extra", "expected"),
    [
        ("gpt-5-mini", 'reasoning_efforts = ["low", "turbo"]\ndefault_effort = "low"', "unknown values ['turbo']"),
        ("gpt-5-mini", 'default_effort = "none"', "default_effort 'none' is not one of reasoning_efforts"),
        ("gpt-5-mini", "accepts_sampling = true", "a reasoning model takes no sampling parameters"),
        ("my-finetune", "accepts_images = true", "accepts_images = true needs an image_rule"),
        ("gpt-5-mini", 'image_rule = { kind = "patch", patch_budget = 0, multiplier = "1.2" }', "patch_budget"),
        ("gpt-5-mini", "default_output_tokens = 200000", "default_output_tokens (200000) must not exceed"),
        ("gpt-5-mini", "colour = 1", "colour"),
    ],
)
def test_capabilities_are_validated_at_start_up_naming_the_deployment(tmp_path, model, extra, expected):
    path = tmp_path / "catalog.toml"
    path.write_text(REASONING_ENTRY.format(model=model, extra=extra))
    with pytest.raises(ConfigError) as caught:
        load_catalog(path)
    assert "deployment 'mini'" in str(caught.value) and expected in str(caught.value)


def test_a_short_row_gets_its_familys_capabilities_and_a_row_may_override_them(tmp_path):
    path = tmp_path / "catalog.toml"
    path.write_text(REASONING_ENTRY.format(model="o4-mini", extra='reasoning_efforts = ["low", "high"]\n'
                                                                   'default_effort = "high"\nmax_images = 4'))
    o4 = load_catalog(path).get("mini")
    assert o4.reasoning and not o4.accepts_sampling and o4.accepts_images
    assert o4.reasoning_efforts == ("low", "high") and o4.default_effort == "high" and o4.max_images == 4
    assert o4.image_rule.kind == "patch" and o4.image_rule.multiplier == Decimal("1.72")
    assert o4.answer_limit(1000) == 8000 and o4.effort("medium") == "high" and o4.effort("low") == "low"


def test_the_product_catalog_lists_only_current_reasoning_models():
    from config.catalog import DEFAULT_CATALOG_FILE

    catalog = load_catalog(DEFAULT_CATALOG_FILE)
    assert {"gpt-5-mini", "gpt-5.1", "gpt-5.4-nano"} <= set(catalog.names) and catalog.default == "gpt-5-mini"
    assert all(d.reasoning and not d.accepts_sampling for d in catalog.deployments)
    assert not {"gpt-4o", "gpt-4o-mini", "gpt-35-turbo"} & {d.model for d in catalog.deployments}  # retired on Azure
