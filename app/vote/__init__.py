"""The vote app: the home page of open polls, each poll's page, and voting (form and JSON).

It needs only Redis: polls are read from their published definitions, and votes go to the
stream through a script that checks the poll (so it keeps working while Postgres fails over).
"""

from flask import Blueprint

bp = Blueprint("vote", __name__)

from app.vote import api, views  # noqa: E402, F401  (they add their routes to bp)
