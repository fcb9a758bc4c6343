"""Talking to a registry: the one API client, auth, recorded exchanges, digests, media types, API paths."""
