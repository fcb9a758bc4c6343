"""Stateful conformance: random operation sequences checked against a reference model of registry state."""
