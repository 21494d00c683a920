"""Poll management, served by the login app (accounts and the Postgres leader): make a poll,
list one's polls, close, reopen and delete them; as pages and as a JSON API.

Postgres is changed first (the source of truth), then the poll's definition is published to
Redis with WAIT, where the vote app reads it (core/polls).
"""

from flask import Blueprint

bp = Blueprint("manage", __name__)

from app.manage import api, views  # noqa: E402, F401  (they add their routes to bp)
