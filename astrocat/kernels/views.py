"""Symmetric views of a prepared batch, for test-time augmentation (``--tta N``).

A card declares which transformations leave its task unchanged (``invariances``): the
sky has no up, so a galaxy's morphology, a lens and a density field's cosmology are the
same after a 90-degree rotation or a mirror flip; a spectrum has no such symmetry. The
views are the dihedral group's elements in a fixed order chosen so that the first few
are as different as possible (N = 2 gives a half turn, N = 4 adds both mirrors); view 0
is always the identity, which is what the out-of-domain statistics are computed on.
"""

from __future__ import annotations

import numpy as np

#: What a card may declare; the views each makes available, in this order.
INVARIANCES = ("rot90", "flip")
#: (quarter turns, then mirror left-right): the dihedral group D4, most distinct first.
_D4 = ((0, False), (2, False), (0, True), (2, True), (1, False), (3, False), (1, True),
       (3, True))


def available(invariances: tuple[str, ...]) -> tuple[tuple[int, bool], ...]:
    """The views a card's invariances allow, identity first."""
    rot, flip = "rot90" in invariances, "flip" in invariances
    return tuple(v for v in _D4 if (rot or v[0] == 0) and (flip or not v[1]))


def spatial_axes(ndim: int, layout: str) -> tuple[int, int]:
    """(height, width) axes of a batch: (n, H, W), (n, H, W, C) or (n, C, H, W)."""
    if ndim == 4 and layout == "NCHW":
        return 2, 3
    return 1, 2


def make_views(x: np.ndarray, views: tuple[tuple[int, bool], ...], layout: str) -> np.ndarray:
    """The batch under each view, stacked view-major: (len(views) * n, ...). A torch
    tensor (a batch prepared on the GPU) stays a tensor on its device."""
    ax = spatial_axes(x.ndim, layout)
    if not isinstance(x, np.ndarray):  # a torch.Tensor on its device (GPU-decoded batch)
        import torch  # already imported: x is one of its tensors

        return torch.cat([(x.flip(ax[1]) if mirror else x).rot90(quarter_turns, ax)
                          for quarter_turns, mirror in views]).contiguous()
    out = []
    for quarter_turns, mirror in views:
        v = np.flip(x, axis=ax[1]) if mirror else x
        out.append(np.rot90(v, k=quarter_turns, axes=ax) if quarter_turns else v)
    return np.ascontiguousarray(np.concatenate(out))


def reduce_views(y: np.ndarray, n_views: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (sample standard deviation) over the views of view-major outputs
    (n_views * n, k) -> two (n, k) arrays."""
    stacked = y.reshape(n_views, -1, y.shape[-1])
    return stacked.mean(axis=0), stacked.std(axis=0, ddof=1)
