"""Custom ops: ``imkd::bev_pool`` (BEVPoolv2-style lift-splat sum) and its geometry precompute."""

from imkd_ros.ops.bev_pool import bev_pool, bev_pool_naive
from imkd_ros.ops.bev_pool_geometry import (
    BevGrid,
    BevPoolGeometry,
    GeometryCache,
    compute_bev_pool_geometry,
)

__all__ = [
    "BevGrid",
    "BevPoolGeometry",
    "GeometryCache",
    "bev_pool",
    "bev_pool_naive",
    "compute_bev_pool_geometry",
]
