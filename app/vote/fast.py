"""Votes answered before Flask: the form and JSON vote POSTs of a voter whose request holds
nothing unusual.

A vote is the request that comes by the thousand per second, and Flask's generic machinery
(request context, session interface, CSRF hook, URL routing, response processing) cost
about half of its CPU. This WSGI layer, between the proxy headers and Flask, answers the
common case itself with the same parts the views use:

- the session record as Flask-Session keeps it (`session:<id>` in Redis, read by the views'
  own session interface: app/sessions.py, RedisSessions.stored), holding a voter
  (app/auth.py: voter_in);
- the CSRF token as Flask-WTF makes and checks it (signed by itsdangerous with the app's
  secret and the "wtf-csrf-token" salt, equal to the session's `csrf_token`; on HTTPS the
  Referer must be of the same origin);
- the input rules of app/inputs.py, the vote itself through app/ballot_box.py: record_vote,
  and the same metrics and headers as the views' answer (303 to the poll page, or 202 JSON).

Whatever it does not accept goes to Flask untouched and is answered as before: no session or
no voter yet (the view makes one), a missing or wrong token, a query string, another content
type, a field the views would refuse, login required. So it never accepts what the views
would refuse; tests/app/test_fast_votes.py holds it to the views' answers. Nothing has been
written when a request goes on to Flask, except when the cast itself did not succeed (refused
by the poll, not confirmed by replicas, Redis failing): then the outcome travels with the
request and the view's error handling answers it without casting again.
"""

from __future__ import annotations

import hmac
import io
import logging
import re
from collections.abc import Callable, Iterable
from time import perf_counter
from urllib.parse import parse_qsl

from flask import Flask, Response, request
from flask_wtf.csrf import same_origin
from itsdangerous import BadData, URLSafeTimedSerializer
from redis.exceptions import RedisError
from werkzeug.utils import redirect
from werkzeug.wrappers import Request

from app import auth, inputs, metrics, resources, security_headers, sessions
from app.api import nested_field
from app.ballot_box import VoteNotSaved, VoteRefused, record_vote
from app.vote.api import accepted_document
from app.vote.casting import refuse
from app.vote.views import voted_url
from core.polls import FIRST_POLL_ID, OPTION_KEY, is_poll_id
from core.stream import Vote

logger = logging.getLogger(__name__)

# The vote routes (app/vote/views.py and api.py) and their URL rules, for the metrics.
_ROUTES = (
    (re.compile(r"/vote"), "/vote", False),
    (re.compile(r"/p/([^/]+)/vote"), "/p/<poll_id>/vote", False),
    (re.compile(r"/api/votes"), "/api/votes", True),
    (re.compile(r"/api/polls/([^/]+)/votes"), "/api/polls/<poll_id>/votes", True),
)
FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
# Flask-WTF's token: the session's csrf_token signed with this salt (flask_wtf/csrf.py).
CSRF_SALT = "wtf-csrf-token"
# A vote's body is tens of bytes; anything much larger is left to the views' checks.
MAX_BODY = 4096
# What the fast path hands over to the view when casting did not succeed (see the docstring).
HANDED_OVER = "ha_vote.vote_not_cast"


class FastVotes:
    """WSGI middleware: answer plain votes, pass everything else to `wsgi_app` (Flask)."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.flask, self.app = app, wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            started = environ[metrics.STARTED] = perf_counter()
            answered = self.answer(environ)
            if answered is not None:
                rule, response = answered
                metrics.of(self.flask).observe(
                    "POST", rule, response.status_code, perf_counter() - started
                )
                # A list: the server sends it in one go instead of iterating over it.
                start_response(response.status, response.headers.to_wsgi_list())
                return [response.get_data()]
        return self.app(environ, start_response)

    def answer(self, environ: dict) -> tuple[str, Response] | None:
        """The URL rule and answer of a plain vote, or None to let Flask answer."""
        route = _route(environ.get("PATH_INFO", ""))
        if route is None or environ.get("QUERY_STRING"):
            return None
        rule, poll_id, is_api = route
        if not is_poll_id(poll_id):
            return None
        req = Request(environ)
        most = self.flask.config["MAX_CONTENT_LENGTH"]
        body = _body(req, MAX_BODY if most is None else min(MAX_BODY, most))
        if body is None:
            return None
        fields = self._json_fields(req, body) if is_api else _form_fields(req, body)
        option = fields.get("option") if fields is not None else None
        if not isinstance(option, str) or not OPTION_KEY.fullmatch(option):
            return None
        clients = self.flask.extensions[resources.EXTENSION]
        try:
            data = self._session(req)
        except RedisError as exc:
            return _hand_over(environ, None, exc)
        if data is None or not self._csrf_valid(req, {} if is_api else fields, data):
            return None
        voter = auth.voter_in(data)
        if voter is None or (clients.config.require_login and auth.user_in(data) is None):
            return None
        vote = Vote.new(poll_id, voter, option)
        try:
            record_vote(clients.redis, vote, clients.config)
        except (VoteRefused, VoteNotSaved, RedisError) as exc:
            return _hand_over(environ, vote, exc)
        metrics.of(self.flask).votes.labels(outcome="accepted", reason="ok").inc()
        return rule, self._accepted(req, vote, is_api)

    def _session(self, req: Request) -> dict | None:
        """The session record the cookie names (Flask-Session's), or None without one."""
        interface = self.flask.session_interface
        if not isinstance(interface, sessions.RedisSessions) or interface.use_signer:
            return None
        sid = req.cookies.get(self.flask.config["SESSION_COOKIE_NAME"])
        data = interface.stored(sid) if sid else None
        return data if isinstance(data, dict) else None

    def _csrf_valid(self, req: Request, form: dict, data: dict) -> bool:
        """Flask-WTF would accept this request's token (flask_wtf/csrf.py: protect), found in
        the `form` fields (none for JSON: Flask-WTF reads only forms and headers) or a header."""
        config = self.flask.config
        if not config.get("WTF_CSRF_ENABLED", True):
            return False  # the views decide without a token
        field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        if any(key != field and key.endswith(field) for key in form):
            return False  # a prefixed form's token: left to Flask-WTF's own search
        token = form.get(field)
        for header in config.get("WTF_CSRF_HEADERS", ["X-CSRFToken", "X-CSRF-Token"]):
            token = token or req.headers.get(header)
        expected = data.get(field)
        secret = config.get("WTF_CSRF_SECRET_KEY", self.flask.secret_key)  # as Flask-WTF
        if not token or not isinstance(expected, str) or secret is None:
            return False
        signer = URLSafeTimedSerializer(secret, salt=CSRF_SALT)
        try:
            raw = signer.loads(token, max_age=config.get("WTF_CSRF_TIME_LIMIT", 3600))
            if not (isinstance(raw, str) and hmac.compare_digest(expected, raw)):
                return False
        except (BadData, TypeError):
            return False
        if req.is_secure and config.get("WTF_CSRF_SSL_STRICT", True):
            try:
                return bool(req.referrer) and same_origin(req.referrer, f"https://{req.host}/")
            except ValueError:  # a Referer urllib cannot parse (a bad port): the views answer
                return False
        return True

    def _json_fields(self, req: Request, body: bytes) -> dict | None:
        """The JSON object the views would accept (app/api.py: json_object), or None."""
        if req.mimetype != JSON_TYPE:
            return None
        try:
            inputs.utf8(body, "the JSON body")
            data = self.flask.json.loads(body)
        except ValueError:  # bad JSON, or app.inputs.InputError
            return None
        if not isinstance(data, dict) or nested_field(data) is not None:
            return None
        return data

    def _accepted(self, req: Request, vote: Vote, is_api: bool) -> Response:
        """What the view answers to an accepted vote."""
        if is_api:
            response = self.flask.json.response(accepted_document(vote))
            response.status_code = 202
        else:
            response = redirect(voted_url(vote.poll), 303)
        # The session was read (the answer depends on the cookie), never written.
        response.vary.add("Cookie")
        return security_headers(response, req.path)


def _hand_over(environ: dict, vote: Vote | None, exc: Exception) -> None:
    # The view answers from the outcome; the session was read already (or cannot be).
    environ[HANDED_OVER] = (vote, exc)
    environ[sessions.SKIP_SESSION] = True


def _route(path: str) -> tuple[str, str, bool] | None:
    for pattern, rule, is_api in _ROUTES:
        found = pattern.fullmatch(path)
        if found:
            return rule, found.group(1) if pattern.groups else FIRST_POLL_ID, is_api
    return None


def _body(req: Request, limit: int) -> bytes | None:
    """The whole body when its length is declared and at most `limit` (else None); the views
    can still read it."""
    environ = req.environ
    length = environ.get("CONTENT_LENGTH", "")
    if (
        not (length.isascii() and length.isdigit())
        or int(length) > limit
        or "HTTP_TRANSFER_ENCODING" in environ
        or inputs.TOO_LARGE in environ
    ):
        return None
    body = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(body)
    return body if len(body) == int(length) else None


def _form_fields(req: Request, body: bytes) -> dict | None:
    """The form's fields when the views would read the same ones and pass app/inputs.py."""
    if req.mimetype != FORM_TYPE:
        return None
    try:
        inputs.check_urlencoded(body, "the form", "a form field")
    except inputs.InputError:
        return None
    pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    fields = dict(pairs)
    return fields if len(fields) == len(pairs) else None  # a repeated field: left to the views


def _answer_handed_over() -> None:
    """Before any other hook: a vote the fast path could not cast is answered from its outcome
    (app/vote/casting.py: refuse), not cast a second time."""
    handed = request.environ.get(HANDED_OVER)
    if handed is None:
        return
    vote, exc = handed
    if isinstance(exc, VoteRefused | VoteNotSaved):
        refuse(vote, exc)
    raise exc  # Redis failing: app/errors.py answers 503


def init_app(app: Flask) -> None:
    """Answer plain votes before Flask; call before any other before_request hook is added."""
    app.before_request(_answer_handed_over)
    app.wsgi_app = FastVotes(app, app.wsgi_app)
