"""The circuit breakers of every node, as the error and status endpoints show them.

This node's breakers are read live; the other nodes' come from their last heartbeat in
``cluster_nodes`` (``cluster.registry``), marked with when they were reported and whether
their node has gone stale.
"""

from __future__ import annotations

from dataclasses import dataclass

from vatsim_collector.api.context import ErrorLayer
from vatsim_collector.api.models_errors import BreakerOut, NodeOut
from vatsim_collector.cluster.registry import NodeState
from vatsim_collector.errors.breaker import BreakerSnapshot


@dataclass(frozen=True)
class BreakerView:
    node: str | None
    breakers: list[BreakerOut]
    nodes: list[NodeOut]
    complete: bool


def breaker_view(layer: ErrorLayer) -> BreakerView:
    """Every breaker ``layer`` can see: its own, and with a cluster registry every node's."""
    if layer.cluster is None:
        name = layer.manager.node
        own = [breaker_out(s, name) for s in layer.breakers.snapshots()]
        return BreakerView(name, own, [], True)
    view = layer.cluster.view()
    breakers = [breaker_out(s, node.name, node) for node in view.nodes for s in node.breakers]
    nodes = [
        NodeOut(
            node=n.name,
            role=n.role,
            host=n.host,
            pid=n.pid,
            started_at=n.started_at,
            heartbeat_at=n.heartbeat_at,
            stale=n.stale,
            local=n.local,
        )
        for n in view.nodes
    ]
    return BreakerView(layer.node_name, breakers, nodes, view.complete)


def breaker_out(
    snapshot: BreakerSnapshot, name: str | None, node: NodeState | None = None
) -> BreakerOut:
    """One breaker of the node called ``name``; ``node`` as the cluster sees it, if known."""
    # This node's breakers are live: neither reported earlier nor stale.
    remote = node if node is not None and not node.local else None
    return BreakerOut.model_validate(
        {
            **snapshot.as_dict(),
            "node": name,
            "reported_at": remote.heartbeat_at if remote is not None else None,
            "stale": remote.stale if remote is not None else False,
        }
    )
