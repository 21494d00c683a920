"""Operator tooling: the votectl command."""
