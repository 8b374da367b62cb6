"""Index math in fp32 whatever the network precision (fp16 export, CUDA autocast).

Why: a BEV cell or depth bin is ``floor((x - x_min) / res)``; in fp16 (10-bit mantissa) a point
50 m out is only known to ~3 cm, so points near a cell or bin edge land in the neighbour (about 2%
of radar points did). Functions that turn coordinates into indices are wrapped with
``fp32_index_math``: their floating tensor arguments are cast to fp32 and autocast is disabled
inside, so both torch autocast and the exported fp16 graph (traced under autocast) keep every
Floor / Cast-to-int on fp32 values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., Any])

_LOW = (torch.float16, torch.bfloat16)


def to_fp32(x: Any) -> Any:
    """fp16/bf16 tensors -> fp32; anything else unchanged."""
    if isinstance(x, Tensor) and x.dtype in _LOW:
        return x.float()
    return x


def fp32_index_math(fn: F) -> F:
    """Run ``fn`` with fp32 floating tensor arguments and autocast off (see module doc)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = tuple(to_fp32(a) for a in args)
        kwargs = {k: to_fp32(v) for k, v in kwargs.items()}
        device = next((a.device.type for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
