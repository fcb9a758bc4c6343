"""Every real client, by name, in the order the matrix lists them."""

from __future__ import annotations

from regconform.clients.base import Client
from regconform.clients.containers import BuildahClient, PodmanClient
from regconform.clients.ctr import CtrClient
from regconform.clients.docker import DockerClient
from regconform.clients.sdks import DxfClient, OrasClient
from regconform.clients.sigstore import SigstoreOciClient
from regconform.clients.skopeo import SkopeoClient

CLIENTS: dict[str, type[Client]] = {c.name: c for c in (DockerClient, PodmanClient, BuildahClient, CtrClient, SkopeoClient,
                                                         OrasClient, DxfClient, SigstoreOciClient)}

__all__ = ["CLIENTS"]
