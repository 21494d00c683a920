"""Failure drills: a voter load, a fault, and the proof that no acknowledged vote was lost."""


class DrillError(Exception):
    """A drill could not run, or the stack did not recover; the message says where."""
