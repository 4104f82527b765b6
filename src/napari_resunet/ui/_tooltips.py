"""Every user-facing help string of the widgets, in one place."""

from __future__ import annotations

from typing import Any

from napari_resunet.core.training.finetune import ROUND_TRAIN_SECONDS

TOOLTIPS: dict[str, str] = {
    "image": "The image to segment. 2D, 3D, RGB or with a channel axis.",
    "channel_axis": "Axis of the image that holds channels (multi-channel images). "
    "'none' for a single-channel image; RGB layers are detected automatically.",
    "model": "Which network segments: the session's current model (after loading or "
    "fine-tuning), a starter model shipped with the plugin, a new untrained 2D or 3D "
    "network to fine-tune from scratch, or a checkpoint file (.pt).",
    "mode": "What a new network learns: 'cells' gives every cell its own label "
    "(it predicts cell interiors and boundaries, then a watershed separates touching "
    "cells); 'classes' gives one label per class (e.g. 1 = membrane).",
    "min_size": "Cells smaller than this many voxels are removed (cell models).",
    "seeds": "How cells are seeded (cell models): 'interior' uses the predicted cell "
    "interiors; 'distance' uses the centres of the interiors' distance transform, which "
    "also splits cells the network merged.",
    "seed_threshold": "Cell models: interior probability above which a region seeds "
    "a cell. Higher values split touching cells more readily.",
    "checkpoint": "A napari-resunet checkpoint (.pt) written by 'Save model…' or the "
    "napari-resunet command line.",
    "advanced": "Show tiling and device settings. The defaults are chosen from the "
    "image size and the layer's voxel size.",
    "tile": "Tile shape in array axis order, e.g. 64,128,128, or 'auto' to pick the "
    "fastest tiles for this image and device.",
    "overlap": "Fraction of each tile shared with its neighbour; tiles are blended "
    "with a Gaussian window.",
    "batch": "Tiles per forward pass (higher helps on GPUs).",
    "device": "Where the network runs: auto picks CUDA, then Apple MPS, then the CPU.",
    "flips": "Average the prediction over this many mirrorings of the image (up to 4 "
    "for a 2D network, 8 for a 3D one), that many times slower. 1 = none. It made "
    "membrane and boundary networks more accurate (EM: fewer merged cells), not "
    "nuclei. Re-segmentations after fine-tuning use it too.",
    "probabilities": "Also add a layer with the class probabilities.",
    "replace": "Replace the whole result, including voxels you painted or erased since "
    "the last prediction. Ctrl+Z on the labels layer brings your edits back.",
    "run": "Segment the image in the background. The viewer stays usable.",
    "cancel": "Stop the running job; nothing is written.",
    "labels": "The corrected labels. Cell models: paint each cell with its own label "
    "(napari's 'new label' button), erase with 0. Class models: paint class ids "
    "(1 = foreground for a two-class model, 0 = background).",
    "scope": "What to learn from. 'only what I edited': the voxels you changed since "
    "the last prediction plus a small margin, the rest is ignored. 'edited "
    "slices/patches': every slice (3D) or 64-pixel patch (2D) you touched, densely. "
    "'the whole layer': every voxel, as it is now.",
    "steps": (
        "Optimiser steps for this round. More steps learn more but take longer. "
        "A pretrained model (starter, checkpoint, saved version) is fine-tuned at a "
        "ten times lower rate than a new network, so it keeps what it knows."
    ),
    "short_rounds": (
        "Keep each round to seconds on any CPU: after its first steps the round "
        "plans only as many steps as fit in its time limit, at least half the "
        f"steps above: {ROUND_TRAIN_SECONDS[(2, False)]:g} s of training in 2D; "
        f"in 3D {ROUND_TRAIN_SECONDS[(3, True)]:g} s for a pretrained model, "
        "which gains little from more steps, and "
        f"{ROUND_TRAIN_SECONDS[(3, False)]:g} s for a network still learning. "
        "Where the CPU is fast enough every step runs; the status line says "
        "when fewer did. Untick to always run every step."
    ),
    "class_mix_auto": (
        "Let the plugin choose whether your corrections count as if they had the "
        "class mix of the whole labels layer: yes for cells with background, once "
        "the network has learnt something (a starter or saved model, or after the "
        "first round); no for a new network's first round and for layers with "
        "hardly any background (EM boundaries). The status line says which."
    ),
    "class_mix": (
        "Count your corrections as if they had the class mix of the whole labels "
        "layer (untick 'automatic class mix' to choose). It helps when you correct "
        "mostly crowded cells and the network starts to see cells in the "
        "background; it made boundaries worse for boundary (EM) networks."
    ),
    "finetune": "Fine-tune the session model on your corrections, then segment again.",
    "undo": "Restore the model from before the last fine-tuning round.",
    "save_path": "Where 'Save model' writes the checkpoint.",
    "save": "Save the session model as a checkpoint file.",
    "queue_image": "The image whose patches are ranked, segmented by the session "
    "model.",
    "queue_labels": "The labels layer you correct: patches marked reviewed count in "
    "it, and the forest's second opinion learns from its corrections.",
    "queue_cancel": "Stop ranking; the list keeps the entries it had.",
    "queue_patch": "Side of the patches to rank, in pixels (3D networks: cubes, Z "
    "clipped to the stack; 2D networks on stacks: single slices). 0 = auto: three "
    "times the cells' median diameter in the labels (cell models), else 64 (32 for "
    "cubes), between 16 and 128 (64 for cubes).",
    "queue_flips": "Predictions under this many mirrorings; their disagreement adds to "
    "the entropy of the prediction. A trained cell model in empty background is "
    "scored by how unsure the mean of the mirrorings is that a pixel is a cell at "
    "all, where mirrorings that disagree count too. 1 = one prediction (fastest). "
    "Not used while a forest gives its second opinion: that compares the model's "
    "cells from one prediction, nor for a new model, whose patches come in a random "
    "order.",
    "queue_variety": "0 = strictly most uncertain first. Higher values move a patch "
    "back when one already ahead of it has the same predicted class mix (e.g. a "
    "fourth blank corner), so the first entries show different kinds of content. "
    "On BBBC039 nuclei 1 let fine-tuning learn faster than 0; on EM boundary "
    "volumes, where patches differ little in class mix, 1 did worse in the first "
    "round. Set by the plugin while automatic variety is on.",
    "queue_variety_auto": "Let the plugin choose the variety each time it ranks: 1 "
    "where the model sees at least a fifth of the image as background (cells in "
    "empty background), 0 where it sees almost none (EM membranes). A new network, "
    "not yet fine-tuned, has learnt nothing to be unsure of: its patches come in a "
    "random order (the same each time) until its first round. Untick to set the "
    "variety yourself and rank a new network's patches too.",
    "queue_committee": "For a trained 2D cell model, once you have corrected some "
    "cells and some background: rank by the cells on which the model and a random "
    "forest trained on the same corrections disagree (where two unlike learners "
    "part, one is wrong), each patch weighed by how typical it is of the image. "
    "Untick to rank by the model's own uncertainty.",
    "queue_refresh": "Measure where the session model is unsure and rank patches, most "
    "uncertain first (see variety). Reviewed patches are left out.",
    "queue_list": "Choosing an entry moves the view there and outlines the patch. "
    "The score is the model's uncertainty or, with the forest's second opinion, "
    "'weighted': the share of the patch on cells the two disagree on, times how "
    "typical the patch is of the image.",
    "queue_next": "Go to the next patch in the queue.",
    "queue_review": "The patch is correct as shown: all its voxels count as corrections "
    "in the next fine-tuning round, and it leaves the queue.",
    "queue_finetune": "Run a fine-tuning round now with the Fine-tune widget's "
    "settings (your corrections and reviewed patches); the queue refreshes after it.",
    "ver_image": "The image the versions segment when one is restored or two are "
    "compared; its held-back reviewed patches score each new version.",
    "ver_labels": "The corrected labels layer saved with the session. Opening a "
    "session chooses the layer its saved corrections come back in.",
    "ver_version": "The version to restore, or the first (left) of two to compare.",
    "ver_other": "The second version to compare, shown on the right.",
    "ver_folder": "Folder of the annotation session (empty: a new folder in your user "
    "data folder is made at the first fine-tuning round).",
    "ver_table": "One row per fine-tuning round: when, how many corrected voxels it "
    "learned from, its steps, and the foreground Dice on the held-back reviewed "
    "patches before and after it (every third patch you mark reviewed is held back). "
    "A round that lowers it is noted 'worse'.",
    "ver_open": "Reopen the session in this folder: versions, corrections and reviewed "
    "patches.",
    "ver_save": "Save the corrections, the edited-voxel mask and reviewed patches into "
    "the session folder (versions are saved automatically).",
    "ver_restore": "Make the chosen version the session model again and segment the "
    "image with it; your edits are kept (Undo in Fine-tune goes back).",
    "ver_compare": "Segment the image with both versions into two Labels layers shown "
    "side by side, each over the image (a two-cell grid; other layers are hidden "
    "until you turn the grid off).",
    "ver_cancel": "Stop the comparison; no layers are added.",
    "eval_pred": "The segmentation to score (e.g. '<image> [resunet]').",
    "eval_truth": "The ground truth to compare with, same shape.",
    "eval_mode": "'instance': one id per object (matching at IoU 0.5-0.9, F1, AP, plus "
    "Rand error and VI in 3D); 'semantic': class ids (Dice, IoU per class); 'auto': "
    "instance when any id is above 2.",
    "eval_restrict": "Score only a range of slices along the first axis (e.g. the "
    "slices you reviewed).",
    "eval_start": "First slice scored (index along the first axis).",
    "eval_stop": "Scoring stops before this slice.",
    "eval_table": "The metrics of the last evaluation.",
    "eval_copy": "Copy the table to the clipboard as CSV (metric, value).",
    "eval_csv": "Where 'Export CSV' writes the table.",
    "eval_export": "Write the table to the CSV file.",
    "eval_run": "Compute the metrics (in the background).",
}


def tipped(*entries: Any) -> list[Any]:
    """The widgets of ``entries``, in order, for a container's ``extend``: each
    ``(widget, key)`` gets ``TOOLTIPS[key]`` as its tooltip, a bare widget (a
    status line) none. One list then says both what a dock shows and what
    each control's help is."""
    widgets = []
    for entry in entries:
        widget, key = entry if isinstance(entry, tuple) else (entry, None)
        if key is not None:
            widget.tooltip = TOOLTIPS[key]
        widgets.append(widget)
    return widgets
