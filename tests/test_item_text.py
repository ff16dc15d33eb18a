import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsrec_hf.processing.catalog import DEFAULT_TEXT_TEMPLATE
from lsrec_hf.data import DataError, render_item_text
from lsrec_hf.data.item_text import template_fields


def render(**fields):
    return render_item_text(DEFAULT_TEXT_TEMPLATE, fields)


def test_all_fields_fill_the_default_template():
    assert render(title="Toy Story", year=1995, genres=["Animation", "Comedy"]) == "Toy Story (1995). Genres: Animation, Comedy."


def test_missing_year_drops_its_parentheses():
    assert render(title="Toy Story", genres=["Comedy"]) == "Toy Story. Genres: Comedy."


def test_empty_genres_drop_their_label():
    assert render(title="Toy Story", year="1995", genres=[]) == "Toy Story (1995)."


def test_title_alone_is_a_clean_sentence():
    assert render(title="Toy Story") == "Toy Story."


def test_no_fields_give_an_empty_text():
    assert render() == ""
    assert render(title="", year=None, genres=float("nan")) == ""


def test_empty_title_leaves_no_leading_punctuation():
    assert render(year="1995", genres=["Drama"]) == "(1995). Genres: Drama."


def test_title_punctuation_is_left_alone():
    assert render(title="Mr. Holland's Opus: Part (II)", genres=["Drama"]) == "Mr. Holland's Opus: Part (II). Genres: Drama."
    assert render(title="...And Justice for All") == "...And Justice for All."


def test_custom_template_drops_an_empty_field_with_its_separator():
    assert render_item_text("{title}, {year}", {"title": "Heat", "year": ""}) == "Heat"
    assert render_item_text("Title: {title}. Brand: {brand}.", {"title": "Mug", "brand": ""}) == "Title: Mug."


def test_unknown_placeholder_is_named():
    with pytest.raises(DataError, match=r"\{brand\}"):
        render_item_text("{title} by {brand}", {"title": "Mug"})


def test_invalid_template_raises_data_error():
    with pytest.raises(DataError, match="not a valid format string"):
        render_item_text("{title", {"title": "x"})
    with pytest.raises(DataError, match="plain field name"):
        template_fields("{title.upper}")


words = st.text(alphabet="abcdefghij XYZ'", max_size=12).map(lambda s: " ".join(s.split()))


@settings(max_examples=200, deadline=None)
@given(title=words, year=st.sampled_from(["", "1995", "2001"]), genres=st.lists(words, max_size=3))
def test_rendered_text_never_keeps_empty_decoration(title, year, genres):
    text = render(title=title, year=year, genres=genres)
    assert "()" not in text and ": ." not in text and ".." not in text and "  " not in text
    assert not text.startswith((".", ",", " ")) and text == text.strip()
    if title:
        assert text.startswith(title)
    if title and year and any(genres):
        assert text == DEFAULT_TEXT_TEMPLATE.format(title=title, year=year, genres=", ".join(g for g in genres if g))


@pytest.mark.parametrize("template", ["{title:>4000}", "{title:>10000000}", "{title:d}", "{title!r}"])
def test_a_format_spec_or_conversion_is_refused_naming_the_placeholder(template):
    with pytest.raises(DataError, match=r"placeholder \{title\} has a format spec or conversion"):
        render_item_text(template, {"title": "Heat"})


def test_rendering_takes_linear_time_in_the_template():
    spaces = " " * 20000
    template = f"{{title}}{spaces}({{year}}).{spaces}Genres:{spaces}{{genres}}.{spaces}, {{brand}}"
    start = time.perf_counter()
    text = render_item_text(template, {"title": "Heat", "brand": ""})
    assert time.perf_counter() - start < 1.0
    assert text == "Heat."
