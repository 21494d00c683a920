# One image for every Python service of ha-vote: the vote/result/login apps (granian),
# the worker (`python -m worker`) and votectl (secrets, migrations, status, backups).
# Built on Debian bookworm with Debian's python3 (3.11); Python packages come from the hashed
# lock requirements/base.txt, installed from the host-built wheelhouse (docker/wheels) when it
# has them, else from PyPI. The default command runs the vote app; compose and the stack
# file set the others.

# --- build: the project and its dependencies in a virtualenv -----------------------------
FROM debian:bookworm-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
# Dependencies first, in their own layer: source edits then rebuild only the last steps.
COPY docker/pip-install.sh /usr/local/bin/
COPY requirements/base.txt docker/requirements/build.txt /tmp/requirements/
COPY docker/wheels/ /tmp/wheels/
RUN pip-install.sh /opt/venv /tmp/requirements/base.txt /tmp/wheels \
    && pip-install.sh /opt/venv /tmp/requirements/build.txt /tmp/wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY app ./app
COPY worker ./worker
COPY ops ./ops
# No build isolation (it would fetch setuptools from an index); then drop the build tools.
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --quiet \
        --no-deps --no-index --no-build-isolation . \
    && /opt/venv/bin/pip uninstall --quiet -y setuptools wheel

# --- runtime: Debian's python3 and the virtualenv, run by an unprivileged user -------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 vote \
    && useradd --system --uid 10001 --gid vote --home-dir /home/vote --create-home \
        --shell /usr/sbin/nologin vote \
    # The mount point of the secrets (compose's secrets volume takes this owner).
    && install -d -o vote -g vote -m 0750 /run/secrets
COPY --from=build /opt/venv /opt/venv
COPY docker/secrets-init.sh /usr/local/bin/secrets-init.sh
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_FORMAT=json \
    WEB_BIND=0.0.0.0:8000
USER vote
WORKDIR /home/vote
EXPOSE 8000
# No HEALTHCHECK here: the same image runs web apps, workers and one-shot jobs, so each
# compose/stack service declares the check that fits it.
# Exec form: the server (granian, app/serve.py) is PID 1 and receives SIGTERM for a graceful stop.
CMD ["python", "-m", "app.serve", "vote"]

# --- backup: the runtime plus the PostgreSQL 15 and Redis clients `votectl backup` calls -----
FROM runtime AS backup
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o vote -g vote /backups
USER vote
CMD ["votectl", "backup", "--every", "3600", "--keep", "24"]
