"""Signed tokens: what verifies, and the clear error for everything that must not."""

from __future__ import annotations

import pytest

from newsletter.delivery.tokens import (
    TokenError, confirm_token, read_confirm_token, read_unsubscribe_token, unsubscribe_token,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
NOW = 1_700_000_000


def test_an_unsubscribe_token_names_its_subscription_and_fits_a_mail_local_part() -> None:
    token = unsubscribe_token(KEY, 1234567)
    assert read_unsubscribe_token(KEY, token) == 1234567
    assert len("unsubscribe+" + token) <= 64
    assert token == token.lower() and token.replace(".", "").isalnum()


def test_tokens_are_stable_for_the_same_key() -> None:
    assert unsubscribe_token(KEY, 7) == unsubscribe_token(KEY, 7)
    assert unsubscribe_token(KEY, 7) != unsubscribe_token(OTHER_KEY, 7)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: unsubscribe_token(OTHER_KEY, 7), "not valid"),  # forged with another key
        (lambda: unsubscribe_token(KEY, 7).replace("7.", "8.", 1), "not valid"),  # altered
        (lambda: unsubscribe_token(KEY, 7)[:-3], "not valid"),  # cut short
        (lambda: unsubscribe_token(KEY, 7).split(".")[0], "not complete"),  # signature missing
        (lambda: confirm_token(KEY, 7, "c0de", NOW), "not complete"),  # a token for another purpose
        (lambda: "7.<script>", "not complete"),
        (lambda: "", "not complete"),
    ],
)
def test_a_bad_unsubscribe_token_is_refused(make: object, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        read_unsubscribe_token(KEY, make())  # type: ignore[operator]


def test_the_same_fields_signed_for_another_purpose_do_not_verify() -> None:
    from newsletter.delivery.tokens import sign, verify

    with pytest.raises(TokenError, match="not valid"):
        verify(KEY, "unsubscribe", sign(KEY, "confirm", "7"), 1)


def test_a_confirmation_expires() -> None:
    token = confirm_token(KEY, 42, "c0de", NOW)
    assert read_confirm_token(KEY, token, now=NOW + 47 * 3600, max_age=48 * 3600) == (42, "c0de")
    with pytest.raises(TokenError, match="expired"):
        read_confirm_token(KEY, token, now=NOW + 49 * 3600, max_age=48 * 3600)


def test_preferences_and_editor_tokens_are_their_own() -> None:
    from newsletter.delivery.tokens import (
        editor_token, preferences_token, read_editor_token, read_preferences_token,
    )

    assert read_preferences_token(KEY, preferences_token(KEY, 9)) == 9
    with pytest.raises(TokenError, match="not valid"):
        read_preferences_token(KEY, unsubscribe_token(KEY, 9))  # an unsubscribe link opens no preferences
    session = editor_token(KEY, "correct horse battery", NOW, "ab12")
    read_editor_token(KEY, "correct horse battery", session, NOW + 3600, 12 * 3600)
    with pytest.raises(TokenError, match="not valid"):  # a new password ends every session
        read_editor_token(KEY, "another long password", session, NOW + 3600, 12 * 3600)
    with pytest.raises(TokenError, match="expired"):
        read_editor_token(KEY, "correct horse battery", session, NOW + 13 * 3600, 12 * 3600)
