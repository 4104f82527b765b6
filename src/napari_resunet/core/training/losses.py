"""Masked cross-entropy + soft Dice: voxels without annotation never move the loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -1


def masked_ce_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ce_weight: float = 1.0,
    dice_weight: float = 1.0,
    eps: float = 1.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy plus soft Dice over annotated voxels only.

    Args:
        logits: ``(N, C, *spatial)`` network output.
        target: ``(N, *spatial)`` int64 class ids; ``IGNORE_INDEX`` (-1) marks voxels
            that are not annotated and must not influence the loss or its gradient.
        ce_weight, dice_weight: weights of the two terms.
        eps: Dice smoothing (in voxels), keeps classes absent from a patch stable.
        class_weights: optional ``(C,)`` per-class voxel weights: each annotated
            voxel counts with its class's weight in both terms (the cross-entropy
            becomes a weighted mean, the Dice sums weighted sums), as if the
            batch held the classes in other proportions.

    Returns:
        A scalar tensor; exactly zero (with a zero gradient) when nothing in the
        batch is annotated.
    """
    valid = target != IGNORE_INDEX
    n_valid = valid.sum()
    if n_valid == 0:
        return logits.sum() * 0.0
    loss = logits.new_zeros(())
    if ce_weight:
        ce = F.cross_entropy(
            logits.float(),
            target,
            weight=class_weights,
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        norm = n_valid if class_weights is None else class_weights[target[valid]].sum()
        loss = loss + ce_weight * ce / norm
    if dice_weight:
        n_classes = logits.shape[1]
        probs = torch.softmax(logits.float(), dim=1)
        w = (
            valid
            if class_weights is None
            else class_weights[target.clamp_min(0)] * valid
        )
        w = w.unsqueeze(1).to(probs.dtype)  # each voxel's weight (0 = not annotated)
        onehot = (
            F.one_hot(target.clamp_min(0), n_classes).movedim(-1, 1).to(probs.dtype)
        )
        dims = (0, *range(2, logits.ndim))
        inter = (probs * onehot * w).sum(dims)
        denom = ((probs + onehot) * w).sum(dims)
        dice = (2 * inter + eps) / (denom + eps)
        loss = loss + dice_weight * (1.0 - dice.mean())
    return loss
