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
