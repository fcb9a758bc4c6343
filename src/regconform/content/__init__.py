"""Deterministic fixture content (images, indexes, artifacts), built once and pushed through the client."""
