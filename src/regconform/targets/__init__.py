"""Registries under test: embedded (container or local process) or external (by URL), and mirror topologies."""

from __future__ import annotations

from regconform.targets.base import CapabilityMissing, GcResult, Target, registry_env


def embedded_target(backend: str, image: str, run_id: str, env: dict[str, str], binary: str | None = None) -> Target:
    """`binary` (--registry-binary): the process backend runs it; for docker, `image` is already the one made from it."""
    if backend == "process":
        from regconform.targets.process import ProcessTarget

        return ProcessTarget(env, binary)
    from regconform.targets.container import ContainerTarget

    return ContainerTarget(image, env, run_id)


__all__ = ["CapabilityMissing", "GcResult", "Target", "embedded_target", "registry_env"]
