"""Upgrade validation: the new version reads what the old one wrote (continuity), and what behaves
differently (the behaviour diff of the suites on both). `corpus` pushes the content, `state`
records what a registry serves of it, `continuity` compares, `sides` starts the versions on one
storage, `flow` runs it all for `regconform upgrade`."""
