"""The vote, result and login web apps (one Flask app factory)."""
