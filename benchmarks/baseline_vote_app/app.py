"""The classic example-voting-app vote service, reduced to what it does per request (baseline).

Kept as the original does it: a `voter_id` cookie the client may set, a new Redis client per
request (kept on `g`, so every POST opens, authenticates and closes a connection), RPUSH of
a JSON vote to a list, and the page rendered again on every GET and POST. Only the Redis
address, its user and password and the list's name come from the environment, so the benchmark can
point it at the HA stack's Redis master without touching the stack's own `votes` stream.

    REDIS_HOST=127.0.0.1 REDIS_PORT=17102 REDIS_PASSWORD=... VOTES_KEY=bench:baseline:votes \
        gunicorn --chdir benchmarks/baseline_vote_app app:app
"""

import json
import os
import random
import socket

from flask import Flask, g, make_response, render_template, request
from redis import Redis

option_a = os.getenv("OPTION_A", "Cats")
option_b = os.getenv("OPTION_B", "Dogs")
hostname = socket.gethostname()

app = Flask(__name__)


def get_redis() -> Redis:
    """One client per request context, as in the original."""
    if not hasattr(g, "redis"):
        g.redis = Redis(
            host=os.getenv("REDIS_HOST", "redis"),
            port=int(os.getenv("REDIS_PORT", "6379")),
            # An ACL user where the default user is off (the HA stack's Redis).
            username=os.getenv("REDIS_USERNAME") or None,
            password=os.getenv("REDIS_PASSWORD") or None,
            db=0,
            socket_timeout=5,
        )
    return g.redis


@app.route("/", methods=["POST", "GET"])
def hello():
    voter_id = request.cookies.get("voter_id")
    if not voter_id:
        voter_id = hex(random.getrandbits(64))[2:-1]

    vote = None
    if request.method == "POST":
        redis = get_redis()
        vote = request.form["vote"]
        data = json.dumps({"voter_id": voter_id, "vote": vote})
        redis.rpush(os.getenv("VOTES_KEY", "votes"), data)

    resp = make_response(
        render_template(
            "index.html", option_a=option_a, option_b=option_b, hostname=hostname, vote=vote
        )
    )
    resp.set_cookie("voter_id", voter_id)
    return resp
