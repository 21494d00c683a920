"""The result app: the live results page and its JSON feed."""
