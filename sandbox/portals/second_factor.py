"""The second factor as both portals handle it: the page's words (the prompt, the message after a wrong
answer), its fields, the step after the password, and the page's routes (the form, an answer, a request for a
new code).

No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime, and the
dependency they name is local to :func:`second_factor_routes`.
"""

import hmac
from collections.abc import Callable
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from sandbox.data import CODE_VALIDITY, PendingLogin, PortalState, SecondFactor, SecondFactorResult, masked_phone
from sandbox.portals.responses import Redirect

def second_factor_prompt(state: PortalState, pending: PendingLogin) -> str:
    """What the second-factor page asks, in the portal's words (no secret: the destination is masked)."""
    if pending.kind is SecondFactor.TOTP:
        return "Saisissez le code à 6 chiffres affiché par votre application d'authentification."
    if pending.kind is SecondFactor.CODE:
        minutes = int(CODE_VALIDITY.total_seconds() // 60)
        destination = state.code_destination(pending)
        return f"Un code à 6 chiffres vous a été envoyé {destination}. Il est valable {minutes} minutes."
    phone = masked_phone(state.accounts[pending.login].phone)
    return (
        f"Validez la connexion dans l'application {state.supplier.name} sur votre téléphone ({phone}), "
        "puis cliquez sur « J'ai validé »."
    )


def second_factor_message(result: SecondFactorResult, pending: PendingLogin | None) -> str:
    """The portal's message after an answer that did not complete the login."""
    if result is SecondFactorResult.WRONG and pending is not None:
        left = pending.attempts_left
        return f"Code incorrect. Il vous reste {left} essai{'s' if left > 1 else ''}."
    if result is SecondFactorResult.EXPIRED:
        return "Ce code a expiré. Demandez un nouveau code."
    if result is SecondFactorResult.NOT_APPROVED:
        return "La connexion n'a pas encore été validée dans l'application."
    return "Trop de codes erronés : la connexion a été annulée. Reconnectez-vous."


SECOND_FACTOR_DROPPED = "double-authentification"  # the login page's ?erreur= after a dropped pending login


# -- what both portals do alike around the second factor, each with its own addresses, words and markup --------


def second_factor_form(
    state: PortalState, pending: PendingLogin, *, form_id: str, action: str, token_field: str, label: str,
    submit: str, resend_button: str = "",
) -> str:
    """The page's prompt and form: a code input (or only "J'ai validé" for an approval in the app), then, for a
    code sent by SMS or e-mail, the form asking for a new one (at ``action``/renvoi)."""
    if pending.kind is SecondFactor.APP:
        fields = '<button type="submit">J\'ai validé</button>'
    else:
        fields = (
            f'<label>{label} <input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="7" '
            f'required></label>\n<button type="submit">{submit}</button>'
        )
    token = f'<input type="hidden" name="{token_field}" value="{escape(pending.csrf)}">'
    resend = f"""\n<form id="renvoi" method="post" action="{action}/renvoi">
{token}
<button type="submit"{resend_button}>Renvoyer le code</button>
</form>"""
    return f"""<p class="consigne">{escape(second_factor_prompt(state, pending))}</p>
<form id="{form_id}" method="post" action="{action}">
{token}
{fields}
</form>{resend if pending.kind is SecondFactor.CODE else ""}"""


def after_password(
    state: PortalState, login: str, signed_in: Callable[[str], Response], *, second_factor_url: str, pending_cookie: str
) -> Response:
    """After the right password: on to the second-factor page (its pending-login cookie set), or signed in."""
    pending = state.begin_second_factor(login)
    if pending is None:
        return signed_in(login)
    response = RedirectResponse(second_factor_url, 303)
    response.set_cookie(pending_cookie, pending, httponly=True, samesite="lax")
    return response


def signed_in_response(state: PortalState, url: str, *, session_cookie: str, session: str, pending_cookie: str) -> Response:
    """The answer that signs a customer in: on to ``url`` with the session cookie, kept for the portal's session
    lifetime, and the pending-login cookie of the second factor dropped."""
    response = RedirectResponse(url, 303)
    lifetime = int(state.session_lifetime.total_seconds())
    response.set_cookie(session_cookie, session, max_age=lifetime, httponly=True, samesite="lax")
    response.delete_cookie(pending_cookie)
    return response


def second_factor_routes(
    app: FastAPI | APIRouter,
    state: PortalState,
    *,
    url: str,
    login_url: str,
    dropped_url: str,
    pending_cookie: str,
    token_field: str,
    page: Callable[[PendingLogin, SecondFactorResult | None, str], Response],
    expired: Callable[[], Response],
    signed_in: Callable[[str], Response],
) -> None:
    """The second-factor page at ``url``, bound to the pending login of ``pending_cookie`` (none: back to
    ``login_url``), its forms carrying the login's token in ``token_field`` (a wrong one: ``expired()``).

    ``GET url`` shows ``page(pending, None, info)`` (``info``: a new code was sent). ``POST url`` checks the
    ``code``: signed in, back to ``dropped_url`` when the pending login is gone (its cookie deleted), or
    ``page(pending, result, "")`` with the portal's complaint. ``POST url/renvoi`` sends a new code when the
    login waits for one, then shows the page again.
    """

    async def verifying(request: Request) -> tuple[str, PendingLogin]:
        """The login waiting for its second factor (else back to the login page)."""
        token = request.cookies.get(pending_cookie, "")
        pending = state.pending_login(token)
        if pending is None:
            raise Redirect(login_url)
        return token, pending

    async def typed_token(request: Request) -> str:
        return str((await request.form()).get(token_field, ""))

    @app.get(url)
    async def second_factor_form(
        found: Annotated[tuple[str, PendingLogin], Depends(verifying)], renvoye: bool = False
    ) -> Response:
        _, pending = found
        info = f"Un nouveau code vous a été envoyé {state.code_destination(pending)}." if renvoye else ""
        return page(pending, None, info)

    @app.post(url)
    async def second_factor_answer(
        found: Annotated[tuple[str, PendingLogin], Depends(verifying)],
        typed: Annotated[str, Depends(typed_token)],
        code: Annotated[str, Form()] = "",
    ) -> Response:
        token, pending = found
        if not hmac.compare_digest(pending.csrf, typed):
            return expired()
        result = state.answer_second_factor(token, code)
        if result is SecondFactorResult.OK:
            return signed_in(pending.login)
        if result in (SecondFactorResult.DROPPED, SecondFactorResult.UNKNOWN):
            response = RedirectResponse(dropped_url, 303)
            response.delete_cookie(pending_cookie)
            return response
        return page(pending, result, "")

    @app.post(f"{url}/renvoi")
    async def second_factor_resend(
        found: Annotated[tuple[str, PendingLogin], Depends(verifying)], typed: Annotated[str, Depends(typed_token)]
    ) -> Response:
        token, pending = found
        if not hmac.compare_digest(pending.csrf, typed) or pending.kind is not SecondFactor.CODE:
            return expired()
        state.send_code(token)
        return RedirectResponse(f"{url}?renvoye=1", 303)
