# One image for every Python service of ha-vote: the vote/result/login apps (gunicorn),
# the worker (`python -m worker`) and votectl (`votectl db init` in the migrate job).
# The default command runs the vote app; compose and the stack file set the others.

# --- build: install the project and its dependencies into a virtualenv ----------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in their own layer: source edits then rebuild only the last step.
COPY pyproject.toml README.md ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY app ./app
COPY worker ./worker
COPY ops ./ops
RUN pip install --no-deps .

# --- runtime: the virtualenv only, run by an unprivileged user -----------------------------
FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 vote \
    && useradd --system --uid 10001 --gid vote --home-dir /home/vote --create-home \
        --shell /usr/sbin/nologin vote \
    # Where prometheus-flask-exporter keeps per-process metric files (compose mounts a tmpfs).
    && install -d -o vote -g vote /tmp/prometheus
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_FORMAT=json \
    GUNICORN_BIND=0.0.0.0:8000
USER vote
WORKDIR /home/vote
EXPOSE 8000
# No HEALTHCHECK here: the same image runs web apps, workers and one-shot jobs, so each
# compose/stack service declares the check that fits it.
# Exec form: gunicorn is PID 1 and receives SIGTERM for a graceful stop.
CMD ["gunicorn", "-c", "python:app.gunicorn_conf", "app.wsgi:vote"]

# --- backup: the runtime plus the PostgreSQL 15 and Redis clients `votectl backup` calls -----
FROM runtime AS backup
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 redis-tools \
    && rm -rf /var/lib/apt/lists/*
USER vote
CMD ["votectl", "backup", "--every", "3600", "--keep", "24"]
