"""The voting client: one browser's session against the web front (drills, benchmarks, tests).

A Voter keeps its own cookies and CSRF token and sends them itself, so many voters can share
one connection pool (a `requests.Session` per thread) without mixing their sessions.
"""

from __future__ import annotations

import re
from http.cookiejar import DefaultCookiePolicy

import requests

from core.polls import FIRST_POLL_ID

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


def poll_options(base_url: str, verify: bool | str = True, poll: str = FIRST_POLL_ID) -> list[str]:
    """The keys of a poll's options, as the poll API (the vote app, Redis) lists them."""
    url = f"{base_url.rstrip('/')}/api/polls/{poll}"
    reply = requests.get(url, timeout=TIMEOUT_S, verify=verify)
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
        self,
        option: str,
        *,
        poll: str | None = None,
        form: bool = False,
        path: str | None = None,
    ) -> requests.Response:
        """Vote for `option` in `poll`: POST /api/polls/<poll>/votes (JSON), or the poll page's
        form with `form=True`; without a poll, the first poll's old URLs (/api/votes, /vote)."""
        if self.token is None:
            self.fetch_token()
        if form:
            default = f"/p/{poll}/vote" if poll else "/vote"
            return self.request(
                "POST", path or default, data={"option": option, "csrf_token": self.token}
            )
        return self.json(
            "POST",
            path or (f"/api/polls/{poll}/votes" if poll else "/api/votes"),
            {"option": option},
        )

    def json(self, method: str, path: str, body: object = None) -> requests.Response:
        """A JSON API request with this voter's session and CSRF token."""
        if self.token is None:
            self.fetch_token()
        return self.request(
            method,
            path,
            **({} if body is None else {"json": body}),
            headers={"X-CSRFToken": self.token or ""},
        )

    def register(self, username: str, password: str) -> None:
        """Create an account through the register form; the session is then logged in."""
        page = self.request("GET", "/register")
        page.raise_for_status()
        token = csrf_from_page(page.text)
        reply = self.request(
            "POST",
            "/register",
            data={"username": username, "password": password, "csrf_token": token or ""},
        )
        if reply.status_code != 303:
            raise VoterError(f"POST /register answered {reply.status_code}: {reply.text[:200]}")
        self.token = None  # logging in starts a new session: its token is another

    def create_poll(self, question: str, options: list[str]) -> dict:
        """Make a poll through the API (logged in); the poll's document."""
        reply = self.json("POST", "/api/polls", {"question": question, "options": options})
        if reply.status_code != 201:
            raise VoterError(f"POST /api/polls answered {reply.status_code}: {reply.text[:200]}")
        return reply.json()
