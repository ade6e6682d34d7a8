"""IBAN handling under generated input (hypothesis): a typed refusal or a valid compact IBAN, nothing else."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from schwifty import IBAN

from glaneur.errors import UsageError
from glaneur.statements.firm import normalize_iban

VALID = [
    "FR7630006000011234567890189",
    "DE89370400440532013000",
    "GB29NWBK60161331926819",
    "BE68539007547034",
    "NL91ABNA0417164300",
    "ES9121000418450200051332",
]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_valid_iban_or_a_usage_error(text):
    try:
        compact = normalize_iban(text)
    except UsageError as error:
        message = str(error)
        assert message and "\n" not in message
        # The message shows at most a masked IBAN, never the whole input back.
        cleaned = "".join(text.split()).upper()
        if len(cleaned) > 8:
            assert cleaned not in message
        return
    assert compact == IBAN(compact).compact
    assert compact.isalnum() and compact == compact.upper()


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.sampled_from([" ", "  ", "\t"]), max_size=6),
    st.booleans(),
)
def test_spacing_and_case_do_not_matter(iban, spaces, lower):
    text = iban.lower() if lower else iban
    for position, space in zip(range(4, len(text), 4), spaces, strict=False):
        text = text[:position] + space + text[position:]
    assert normalize_iban(text) == iban


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_one_changed_character_is_always_refused(iban, data):
    # ISO 7064 MOD 97-10 catches every single substitution: a typo never becomes another client's IBAN.
    position = data.draw(st.integers(min_value=2, max_value=len(iban) - 1))
    alphabet = string.digits if iban[position].isdigit() else string.ascii_uppercase
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != iban[position]]))
    typo = iban[:position] + replacement + iban[position + 1 :]
    try:
        normalize_iban(typo)
    except UsageError:
        return
    raise AssertionError(f"{typo} (one character off {iban}) was accepted")
