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
) -> torch.Tensor:
    """Cross-entropy plus soft Dice over annotated voxels only.

    Args:
        logits: ``(N, C, *spatial)`` network output.
        target: ``(N, *spatial)`` int64 class ids; ``IGNORE_INDEX`` (-1) marks voxels
            that are not annotated and must not influence the loss or its gradient.
        ce_weight, dice_weight: weights of the two terms.
        eps: Dice smoothing (in voxels), keeps classes absent from a patch stable.

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
            logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum"
        )
        loss = loss + ce_weight * ce / n_valid
    if dice_weight:
        n_classes = logits.shape[1]
        probs = torch.softmax(logits.float(), dim=1)
        m = valid.unsqueeze(1).to(probs.dtype)
        onehot = (
            F.one_hot(target.clamp_min(0), n_classes).movedim(-1, 1).to(probs.dtype)
        )
        probs = probs * m
        onehot = onehot * m
        dims = (0, *range(2, logits.ndim))
        inter = (probs * onehot).sum(dims)
        denom = probs.sum(dims) + onehot.sum(dims)
        dice = (2 * inter + eps) / (denom + eps)
        loss = loss + dice_weight * (1.0 - dice.mean())
    return loss
