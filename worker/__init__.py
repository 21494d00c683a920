"""The worker: drains the vote stream into Postgres."""
