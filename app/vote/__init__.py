"""The vote app: the poll page and the two ways to vote (HTML form and JSON API)."""
