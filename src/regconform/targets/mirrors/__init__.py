"""Mirror (pull-through cache) topologies: pairs (an upstream and a cache), the nginx-routed
multi-upstream mirror, deployments by URL; how a mirror names an upstream's repositories (routes);
the comparisons the mirror checks share."""

from regconform.targets.mirrors.compare import (
    parse_image_ref,
    same_as_upstream,
    same_head_as_upstream,
    wait_for,
)
from regconform.targets.mirrors.pairs import (
    CREDENTIAL_WIRINGS,
    VARIANTS,
    WORKDIR_PREFIX,
    EmbeddedMirror,
    ExternalMirror,
    MirrorPair,
)
from regconform.targets.mirrors.routes import (
    Credentials,
    MirrorClient,
    Route,
    external_routes,
)

__all__ = ["MirrorPair", "EmbeddedMirror", "ExternalMirror", "Credentials", "Route", "MirrorClient",
           "external_routes", "parse_image_ref", "VARIANTS", "CREDENTIAL_WIRINGS", "WORKDIR_PREFIX",
           "same_as_upstream", "same_head_as_upstream", "wait_for"]
