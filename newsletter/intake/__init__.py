"""Intake: drafts from news feeds and imported articles, waiting for an analyst."""
