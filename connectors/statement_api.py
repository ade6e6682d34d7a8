"""A bank statement API, as firms subscribe to for their clients' statements (the "statement source").

The second connector engine next to the Playwright portals: plain HTTP with a bearer token, no
browser. It lists the files made available after a cursor and fetches one; it knows nothing of
statements' contents (:mod:`glaneur.statements` parses them).

Errors map onto the statuses: a refused token is ``WrongCredentials`` (never retried: asking again
does not make it valid), a 429 ``RateLimited``, a 5xx, a timeout or a refused connection
``PortalUnavailable`` (retried), an answer that is not the documented JSON ``PortalChanged``.
The token is never part of a message.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from connectors.http_api import HttpApi
from glaneur.errors import PortalChanged, PortalUnavailable, RateLimited, WrongCredentials

LIST_PATH = "/api/v1/statement-files"
MAX_PAGES = 1000  # a runaway cursor must not loop forever


@dataclass(frozen=True)
class RemoteFile:
    id: str
    name: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Listing:
    files: list[RemoteFile]
    cursor: str | None  # to pass as ``after`` next time


class StatementApi(HttpApi):
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    @property
    def api_name(self) -> str:
        return f"the statement API at {self.base_url}"

    def list_files(self, after: str | None) -> Listing:
        """Every file made available after ``after`` (all pages), oldest first."""
        files: list[RemoteFile] = []
        cursor = after
        for _ in range(MAX_PAGES):
            params = {"after": cursor} if cursor else {}
            payload = self._json(self._get(LIST_PATH, params=params))
            try:
                page = [
                    RemoteFile(id=str(item["id"]), name=str(item.get("name") or item["id"]),
                               size=int(item.get("size") or 0), sha256=item.get("sha256"))
                    for item in payload["files"]
                ]
                next_cursor = payload.get("next_cursor")
            except (KeyError, TypeError, ValueError) as exc:
                raise PortalChanged(f"the statement API at {self.base_url} answered an unexpected listing.") from exc
            files.extend(page)
            if not page or not next_cursor or next_cursor == cursor:
                return Listing(files, next_cursor or cursor)
            cursor = next_cursor
        raise PortalChanged(f"the statement API at {self.base_url} kept paginating past {MAX_PAGES} pages.")

    def fetch(self, remote: RemoteFile) -> bytes:
        # Whole, whatever its size: intake keeps even an oversized file (recorded as rejected), never a part.
        return self._get(f"{LIST_PATH}/{remote.id}").content

    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        response = self._send("GET", path, params=params)
        if response.status_code in (401, 403):
            raise WrongCredentials(f"the statement API at {self.base_url} refused the firm's token.")
        if response.status_code == 429:
            raise RateLimited(f"the statement API at {self.base_url} asks to slow down.")
        if response.status_code >= 500 or response.status_code == 408:
            raise PortalUnavailable(f"the statement API at {self.base_url} answered HTTP {response.status_code}.")
        if response.status_code != 200:
            raise PortalChanged(f"the statement API at {self.base_url} answered HTTP {response.status_code} for {path}.")
        return response

    def _json(self, response: httpx.Response) -> dict:
        try:
            payload = response.json()
        except ValueError as exc:
            raise PortalChanged(f"the statement API at {self.base_url} did not answer JSON.") from exc
        if not isinstance(payload, dict):
            raise PortalChanged(f"the statement API at {self.base_url} answered an unexpected listing.")
        return payload
