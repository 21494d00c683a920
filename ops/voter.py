"""The voting client: one browser's session against the web front (drills, benchmarks, tests).

A Voter keeps its own cookies and CSRF token and sends them itself, so many voters can share
one connection pool (a `requests.Session` per thread) without mixing their sessions.
"""

from __future__ import annotations

import re
from http.cookiejar import DefaultCookiePolicy

import requests

# The hidden field of every form page, and the session cookie every app shares.
CSRF_FIELD = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
SESSION_COOKIE = "vote_session"
# Longer than anything the server may spend on one vote (write budget, Redis retries,
# HAProxy's 30 s server timeout): a voter never sends a new vote while the server may still
# be writing the previous one, or the old one could land later and win.
TIMEOUT_S = (2.0, 35.0)


class VoterError(Exception):
    """The web front did not give this voter a session or a CSRF token."""


def csrf_from_page(html: str) -> str | None:
    """The CSRF token in a page's hidden form field, if it has one."""
    match = CSRF_FIELD.search(html)
    return match.group(1) if match else None


def poll_options(base_url: str, verify: bool | str = True) -> list[str]:
    """The keys of the poll's options, as the results API lists them."""
    reply = requests.get(f"{base_url.rstrip('/')}/api/results", timeout=TIMEOUT_S, verify=verify)
    reply.raise_for_status()
    return [option["key"] for option in reply.json()["options"]]


def shared_http(verify: bool | str = True) -> requests.Session:
    """A connection pool for many voters: it never keeps cookies itself."""
    http = requests.Session()
    http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    http.verify = verify
    return http


class Voter:
    """One browser: its session cookie and CSRF token, one request at a time."""

    def __init__(
        self, base_url: str, http: requests.Session | None = None, *, verify: bool | str = True
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or shared_http(verify)
        # Per request: requests lets REQUESTS_CA_BUNDLE override a session's own `verify`.
        self.verify = verify
        self.cookies: dict[str, str] = {}
        self.token: str | None = None

    @property
    def session_id(self) -> str | None:
        return self.cookies.get(SESSION_COOKIE)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """A request with this voter's cookies (`path` on the web front, or a full URL, e.g. of
        one app instance); cookies the answer sets are kept.

        Like a browser, it names the page it comes from (Referer): over HTTPS the apps'
        CSRF check wants the request to come from their own site."""
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        headers = {"Referer": f"{self.base_url}/", **kwargs.pop("headers", {})}
        reply = self.http.request(
            method,
            url,
            headers=headers,
            cookies=self.cookies,
            verify=self.verify,
            timeout=kwargs.pop("timeout", TIMEOUT_S),
            allow_redirects=kwargs.pop("allow_redirects", False),
            **kwargs,
        )
        self.cookies.update(reply.cookies.get_dict())
        return reply

    def fetch_token(self) -> str:
        """A CSRF token for JSON requests (GET /api/csrf), bound to this voter's session."""
        reply = self.request("GET", "/api/csrf")
        reply.raise_for_status()
        self.token = reply.json()["csrf_token"]
        return self.token

    def open_page(self, path: str = "/") -> str:
        """GET a page like a browser; keep the CSRF token of its form. Returns the HTML."""
        reply = self.request("GET", path, allow_redirects=True)
        reply.raise_for_status()
        token = csrf_from_page(reply.text)
        if token is None:
            raise VoterError(f"GET {path} has no CSRF token")
        self.token = token
        return reply.text

    def vote(
        self, option: str, *, form: bool = False, path: str | None = None
    ) -> requests.Response:
        """Vote for `option`: POST /api/votes (JSON), or the page's form with `form=True`."""
        if self.token is None:
            self.fetch_token()
        if form:
            return self.request(
                "POST", path or "/vote", data={"option": option, "csrf_token": self.token}
            )
        return self.request(
            "POST",
            path or "/api/votes",
            json={"option": option},
            headers={"X-CSRFToken": self.token or ""},
        )
