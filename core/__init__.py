"""What the apps, the worker and votectl share: config, vote stream, clients, schema; no Flask."""
