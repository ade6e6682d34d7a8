"""What the connectors speaking plain HTTP to an API share (the Powens client, the statement API).

One ``httpx.Client`` per object, closed by a ``with`` block; a repr that names the API and never a token;
and a transport failure (a timeout, a refused connection) as :class:`~glaneur.errors.PortalUnavailable`,
retried like any portal that is away. What an answer means stays with each API.
"""

from __future__ import annotations

from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from glaneur.errors import PortalUnavailable


class HttpApi:
    """Subclasses set ``base_url`` and ``_http`` and say how messages name them (:attr:`api_name`)."""

    base_url: str
    _http: httpx.Client

    @property
    def api_name(self) -> str:
        return f"the API at {self.base_url}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The answer, whatever its status; no answer at all is ``PortalUnavailable`` (never the query: it may
        carry a code)."""
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise PortalUnavailable(f"{self.api_name} did not answer in time ({method} {urlsplit(url).path}).") from exc
        except httpx.TransportError as exc:
            raise PortalUnavailable(f"{self.api_name} could not be reached ({type(exc).__name__}).") from exc
