"""The second-factor page's words, shared by both portals (the prompt, and the message after a wrong answer)."""

from sandbox.data import CODE_VALIDITY, PendingLogin, PortalState, SecondFactor, SecondFactorResult, masked_phone

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
