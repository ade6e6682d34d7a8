"""POWENS as the engine of a supplier channel: a biller's documents through the Powens client.

("Cliquez sur POWENS ... choisissez un fournisseur parmi la liste proposée, saisissez les identifiants",
merchant-connector-setup.md.) The connector fits the same contract as the Playwright ones, so
``collect-channel`` runs it unchanged and files its documents exactly like theirs (same dedup by
reference, same keys, same history):

* ``login``: a Powens user for this collection, then the POWENS webview, in the page the flow opened,
  with the biller chosen among the connectors offering documents and the channel's credentials (the
  biller's own login and password, from the vault); the biller's code comes back to the flow as a
  second-factor challenge (the flow pauses for the approver, as for any portal). The connection's
  state then says whether the biller accepted (a documented error state raises its typed error).
* the connection is kept in the remembered session (encrypted with the vault key), as a cookie of a
  host no page ever requests; ``is_logged_in`` checks it is still synced, so the next runs reuse it
  instead of connecting again. Powens keeps a user and its connections until they are deleted (the
  token is permanent), so that session does not expire with the portal-session lifetime
  (``session_expires``): otherwise every lifetime would create one more user and connection at Powens,
  each billed, the old ones left behind. A remembered connection that needs the biller again (its code,
  a changed password: ``SCARequired``, ``wrongpass``...) is reconnected through the webview's
  ``reconnect`` flow, the same connection; a new one is made only when Powens no longer knows it.
* ``list_documents``: the connection's subscriptions and their documents (``date``, ``number``,
  ``total_amount``, ``url``); ``fetch``: the document's file, under the size limit.

The Powens token is never logged, put in an exception, a run parameter or a result.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import ClassVar

from connectors.base import PortalConnector
from connectors.powens import (
    _ERROR_CLASSES,
    RECONNECT_STATES,
    BillerDocument,
    PowensApiError,
    PowensClient,
    as_status_error,
    powens_connectors,
    webview_url,
)
from connectors.powens_webview import open_webview, steps
from glaneur.bank import SUPPLIER_NOT_IN_POWENS
from glaneur.contract import (
    Credentials,
    Engine,
    FetchedDocument,
    Provider,
    RemoteDocument,
    SecondFactorChallenge,
    SecondFactorKind,
)
from glaneur.errors import GlaneurError, WrongSecondFactor

log = logging.getLogger(__name__)

REMEMBERED = "glaneur-powens-connection"
REMEMBERED_URL = "https://powens-connection.glaneur.invalid"  # never requested: the cookie is only kept


class _CodeAsked(Exception):
    def __init__(self, prompt: str) -> None:
        self.prompt = prompt


def _stop_for_code(prompt: str) -> str:
    raise _CodeAsked(prompt)


class _InState(Exception):
    """Powens knows the connection, in an error ``state``; ``error`` is its typed status. ``reconnect``: the
    webview's reconnect flow is the next action (the biller's code, a changed password)."""

    def __init__(self, error: GlaneurError, state: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.reconnect = state in RECONNECT_STATES


class PowensBiller(PortalConnector):
    """A biller reached through POWENS; a subclass names the biller as POWENS lists it."""

    biller: ClassVar[str]
    session_expires: ClassVar[bool] = False

    def __init__(self, page, base_url: str, settings=None) -> None:
        from glaneur.bank import powens_settings

        super().__init__(page, base_url, settings)
        self._powens = powens_settings()
        self._token: str | None = None
        self._connection_id: int | None = None
        self._landed: list[str] = []
        self._credentials: Credentials | None = None
        self._documents: dict[str, BillerDocument] = {}
        self._to_reconnect: tuple[int, str] | None = None  # (connection id, token) of a remembered connection in error
        self._new_user = False  # the Powens user was created by this login: deleted again if the login fails

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- the Powens side --

    def _client(self, *, with_secret: bool = False) -> PowensClient:
        api_url, client_id, secret = self._powens.require()
        return PowensClient(api_url, client_id=client_id, client_secret=secret if with_secret else None,
                            token=self._token, timeout=self.page_timeout_ms / 1000)

    def _call(self, fn):
        try:
            return fn()
        except PowensApiError as error:
            raise as_status_error(error) from None

    # -- the contract --

    def login(self, credentials: Credentials) -> SecondFactorChallenge | None:
        if self._to_reconnect is not None:  # the remembered connection needs the biller again: the same one
            connection_id, self._token = self._to_reconnect
            with self._client() as client:
                code = self._call(client.temporary_code)
                url = webview_url(self._powens.webview_url, "reconnect", domain=client.domain,
                                  client_id=client.client_id, redirect_uri=self._powens.redirect_uri, code=code,
                                  connection_id=connection_id)
        else:
            with self._client(with_secret=True) as client:
                self._token, _ = self._call(client.init_user)
                self._new_user = True
                code = self._discarding(lambda: self._call(client.temporary_code))
                url = webview_url(self._powens.webview_url, "connect", domain=client.domain,
                                  client_id=client.client_id, redirect_uri=self._powens.redirect_uri, code=code,
                                  capabilities=["document"])
        self._credentials = credentials
        self._landed = self._discarding(lambda: open_webview(self.page, url, redirect_uri=self._powens.redirect_uri))
        return self._continue()

    def answer_second_factor(self, challenge: SecondFactorChallenge, answer: str | None) -> SecondFactorChallenge | None:
        self.page.fill("#code", self.code_answer(challenge, answer))
        self.page.click("#submit")
        self.page.wait_for_load_state()
        if not self._landed and self.page.locator("#sca").count() and self.page.locator("#error").count():
            raise WrongSecondFactor(f"{self.provider.name} refused the code typed in the POWENS page.")
        return self._continue(code_attempts=1)

    def _continue(self, code_attempts: int = 0) -> SecondFactorChallenge | None:
        try:
            outcome = self._discarding(lambda: steps(
                self.page, self._landed, redirect_uri=self._powens.redirect_uri, bank_name=self.biller,
                login=self._credentials.login, password=self._credentials.password, ask_code=_stop_for_code,
                code_attempts=code_attempts, not_listed=SUPPLIER_NOT_IN_POWENS))
        except _CodeAsked as asked:
            return SecondFactorChallenge(SecondFactorKind.CODE, asked.prompt)
        self._connection_id = outcome.connection_id
        self._to_reconnect = None
        try:
            self._discarding(self._check_synced)
        except _InState as in_state:  # just connected, and the biller already refuses: its typed status
            raise in_state.error from None
        self._new_user = False  # connected: the user is kept, and remembered below
        self.page.context.add_cookies([{"name": REMEMBERED, "value": f"{self._connection_id}.{self._token}",
                                        "url": REMEMBERED_URL, "httpOnly": True, "secure": True}])
        return None

    @classmethod
    def release(cls, remembered: dict) -> bool:
        """The remembered POWENS connection's user is deleted at Powens, and with it the connection holding
        the supplier's login; a user already gone counts as deleted."""
        from glaneur.bank import powens_settings

        kept = next((c.get("value", "") for c in remembered.get("cookies", []) if c.get("name") == REMEMBERED), "")
        if "." not in kept:
            return False
        api_url, client_id, _ = powens_settings().require()
        with PowensClient(api_url, client_id=client_id, token=kept.split(".", 1)[1]) as client:
            client.delete_user()
        return True

    def _discarding(self, step):
        """``step()``; when it fails, a Powens user this login created is deleted again (with any connection it
        got), so that each failed login (a supplier no longer listed, a refused password...) leaves nothing at
        Powens: the next login creates a new one."""
        try:
            return step()
        except _CodeAsked:
            raise
        except Exception:
            if self._new_user:
                self._new_user = False
                try:
                    with self._client() as client:
                        client.delete_user()
                except Exception as error:  # noqa: BLE001 - the login's own failure is what the run reports
                    log.warning("%s: the Powens user of a failed login could not be deleted (%s)",
                                self.provider.name, type(error).__name__)
                self._token = None
            raise

    def _check_synced(self) -> None:
        with self._client() as client:
            connection = self._call(lambda: client.connection(self._connection_id))
        if connection.state is not None:
            cls = _ERROR_CLASSES.get(connection.status, GlaneurError)
            error = cls(f"POWENS: {connection.error_message or connection.state}.")
            if cls is GlaneurError:
                error.status = connection.status
            raise _InState(error, connection.state)

    def is_logged_in(self) -> bool:
        """The remembered connection, if any, still synced at POWENS (then no webview, no code)."""
        kept = next((c["value"] for c in self.page.context.cookies(REMEMBERED_URL) if c["name"] == REMEMBERED), None)
        if not kept or "." not in kept:
            return False
        connection_id, self._token = kept.split(".", 1)
        try:
            self._connection_id = int(connection_id)
            self._check_synced()
        except _InState as in_state:
            if not in_state.reconnect:  # the bank is down, an action on its site...: a login would meet it too
                raise in_state.error from None
            self._to_reconnect = (self._connection_id, self._token)  # log in reconnects it, not another one
            self._token = self._connection_id = None
            return False
        except (GlaneurError, ValueError):  # a revoked token, a deleted connection: connect anew
            self._token = self._connection_id = None
            return False
        return True

    def list_documents(self, since: date | None) -> list[RemoteDocument]:
        found: list[RemoteDocument] = []
        with self._client() as client:
            for subscription in self._call(client.subscriptions):
                if subscription.id_connection != self._connection_id:
                    continue
                for document in self._call(lambda: client.documents(subscription.id)):
                    reference = document.number or f"powens-{document.id}"
                    if since is not None and document.date < since:
                        continue
                    self._documents[reference] = document
                    found.append(RemoteDocument(reference=reference, document_date=document.date,
                                                download_url=document.url or "", amount=document.total_amount,
                                                currency=document.currency, label=document.name))
        return sorted(found, key=lambda d: d.document_date, reverse=True)

    def fetch(self, document: RemoteDocument) -> FetchedDocument:
        with self._client() as client:
            content = self._call(lambda: client.document_file(self._documents[document.reference]))
        if len(content) > self.max_document_bytes:
            raise self._too_big(document.reference, f"{len(content)} bytes")
        return FetchedDocument(document, content, "application/pdf")


def _through_powens(slug: str, name: str, description: str, **more) -> Provider:
    """A catalogue entry collected through POWENS: the supplier's login and password, its code asked like a portal's."""
    return Provider(slug=slug, name=name, engine=Engine.POWENS, login_fields=("login", "password"),
                    second_factor_kinds=(SecondFactorKind.CODE,), description=description, **more)


class EnergieVerteViaPowens(PowensBiller):
    biller = "Énergie Verte"
    provider = _through_powens(
        "energie-verte-powens", "Énergie Verte (via POWENS)",
        "Énergie Verte's invoices through POWENS (a biller of its Documents product): the same login and password "
        "as the customer area; the code the biller sends is asked like any portal's.",
    )


class ChosenBiller(PowensBiller):
    """A supplier chosen in POWENS's list ("Cliquez sur POWENS ... Choisissez un fournisseur parmi la liste
    proposée"): the channel names it (``biller``, checked against the list at ``channel add``)."""

    biller = ""  # set from the channel by collect-channel
    provider = _through_powens(
        "powens", "POWENS (a supplier from its list)",
        "Any supplier of POWENS's list of billers (--biller NAME; 'glaneur providers --powens' lists them): its "
        "documents through POWENS, with the login and password of the supplier's client area.",
        chooses_biller=True,
    )


def billers(timeout: float = 30.0) -> list[str]:
    """POWENS's list of suppliers, as the webview offers them: its connectors with documents, open to new
    connections, by name."""
    from glaneur.bank import name_key

    listed = powens_connectors(timeout)
    return sorted({c.name for c in listed if "document" in c.capabilities and not c.restricted}, key=name_key)


def chosen_biller(name: str) -> str:
    """The supplier ``name`` as POWENS's list names it (accents, case and spacing aside); else a UsageError
    with the list and the help page's advice."""
    from glaneur.bank import name_key
    from glaneur.errors import UsageError

    try:
        names = billers(timeout=10)
    except GlaneurError as error:
        raise UsageError(f"POWENS's list of suppliers could not be read ({error.user_message}); try again.") from None
    found = [listed for listed in names if name_key(listed) == name_key(name)]
    if not found:
        raise UsageError(
            f"'{name.strip()}' does not appear in the POWENS list of suppliers ({', '.join(names) or 'empty'}). "
            f"{SUPPLIER_NOT_IN_POWENS}"
        )
    return found[0]
