"""Two supplier portals that behave like real ones, built differently on purpose.

* **Papeterie Dupont** is an old-style server-rendered site: a CSRF token bound to a pre-session
  cookie, server-side sessions, an HTML table paginated ten rows at a time.
* **Énergie Verte** is a newer "single page" client area: a double-submit CSRF cookie, signed
  stateless session cookies, FastAPI dependencies for authentication, and an HTML shell whose
  inline script loads the invoices from a JSON API.

Both play the scenarios of :mod:`sandbox.data` (expired password, new terms, intermittent 503,
slow pages, changed layout, an invoice that is not a PDF, locked accounts, and the three second
factors: TOTP, a code sent by SMS or e-mail, approval in the app) and share the control
endpoints under ``/_sandbox`` that tests and the demo use. Nothing here imports Glaneur: the
sandbox stands for the outside world and runs alone (``python -m sandbox``).

Second factor, on both portals: the right password of a ``double-*`` account leads to a
second-factor page (Papeterie Dupont ``/double-authentification``, Énergie Verte
``/connexion/verification``) bound to a pending-login cookie. A wrong code shows the page again
with an error and the attempts left; the fifth drops the pending login and sends back to the
login page. Sessions are persistent cookies valid ``state.session_lifetime`` (7 days by default).

Control endpoints (``/_sandbox``): ``POST /reset`` (also clears the outbox, approvals, pending
logins and sessions), ``GET /accounts`` (passwords, TOTP seeds), ``POST /accounts/{login}/invoices``,
``POST /rate-limit``, ``GET /outbox/{login}`` (the latest codes sent, the newest last),
``POST /approve/{login}`` (the phone approves), ``GET /sessions``, ``POST /sessions/expire``
(``{"login": ...}`` optional), ``POST /sessions/lifetime`` (``{"seconds": ...}``), ``GET /clock``,
``POST /clock`` (``{"seconds": ...}``: the portal's time moves forward until reset).

One module per portal (:mod:`.papeterie_dupont`, :mod:`.energie_verte`) and the parts they share:
:mod:`.controls` (``/_sandbox`` and the misbehaviours), :mod:`.second_factor` (the page's words and its
routes), :mod:`.rate_limit` (429 on demand), :mod:`.responses` (the slow pace, the PDF, the redirect a
dependency asks for). The portal modules have no ``from __future__ import annotations``: FastAPI reads
the route signatures at runtime, and the dependencies they name are local to the app factory.
"""
from collections.abc import Callable

from fastapi import FastAPI

from sandbox.data import ENERGIE_VERTE, PAPETERIE_DUPONT
from sandbox.portals.controls import RETRY_AFTER_SECONDS, Misbehaviour, download_path, misbehaviour
from sandbox.portals.energie_verte import energie_verte_app
from sandbox.portals.papeterie_dupont import papeterie_dupont_app
from sandbox.portals.responses import SLOW_SECONDS

APPS: dict[str, Callable[[], FastAPI]] = {
    PAPETERIE_DUPONT.slug: papeterie_dupont_app,
    ENERGIE_VERTE.slug: energie_verte_app,
}

__all__ = [
    "APPS",
    "RETRY_AFTER_SECONDS",
    "SLOW_SECONDS",
    "Misbehaviour",
    "download_path",
    "energie_verte_app",
    "misbehaviour",
    "papeterie_dupont_app",
]
