"""Numeric settings from the environment: defaults, values and clear refusals."""

import pytest

from utils.settings import positive_number_setting, whole_number_setting


def test_unset_or_blank_settings_take_the_default():
    assert whole_number_setting("N", 7, environ={}) == 7
    assert whole_number_setting("N", 7, environ={"N": "  "}) == 7
    assert positive_number_setting("MB", 2.5, unit="MB", environ={"N": "3"}) == 2.5


def test_set_values_are_read():
    assert whole_number_setting("N", 7, environ={"N": " 0 "}) == 0
    assert positive_number_setting("MB", 2.5, unit="MB", environ={"MB": "0.5"}) == 0.5


@pytest.mark.parametrize(("raw", "minimum", "message"), [
    ("two", 0, "N must be a whole number, got 'two'"),
    ("1.5", 0, "N must be a whole number, got '1.5'"),
    ("-1", 0, "N must not be negative, got -1"),
    ("0", 1, "N must be at least 1, got 0"),
])
def test_bad_whole_numbers_are_refused_by_name(raw, minimum, message):
    with pytest.raises(ValueError) as info:
        whole_number_setting("N", 7, minimum=minimum, environ={"N": raw})
    assert str(info.value) == message


@pytest.mark.parametrize(("raw", "message"), [
    ("lots", "MB must be a number of MB, got 'lots'"),
    ("0", "MB must be positive, got 0.0"),
    ("nan", "MB must be positive, got nan"),
])
def test_bad_positive_numbers_are_refused_by_name(raw, message):
    with pytest.raises(ValueError) as info:
        positive_number_setting("MB", 1.0, unit="MB", environ={"MB": raw})
    assert str(info.value) == message
