"""Showing one patch of an image: the viewer moved there, the patch outlined.

The Annotation queue walks the user through its patches with this.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_resunet.ui._layers import ImageSnapshot, camera_of

HIGHLIGHT = "[resunet] queue patch"  # the Shapes layer outlining the patch


def show_patch(viewer: Any, snap: ImageSnapshot, slices: tuple[slice, ...]) -> None:
    """Move ``viewer`` to the patch ``slices`` of the image ``snap`` was taken
    from (Z slider for stacks, camera centre and zoom so the patch fills about
    60% of the view) and outline it in the :data:`HIGHLIGHT` Shapes layer."""
    centre_px = [(s.start + s.stop - 1) / 2 for s in slices]
    scale = np.asarray(snap.scale if snap.scale else (1.0,) * len(slices))
    offset = np.asarray(snap.translate if snap.translate else (0.0,) * len(slices))
    centre = offset + scale * np.asarray(centre_px)
    lo = offset + scale * np.asarray([s.start for s in slices])
    hi = offset + scale * np.asarray([s.stop - 1 for s in slices])
    ndim = len(slices)
    # a Z position for stacks, then the camera on the patch's (Y, X) centre
    if ndim == 3:
        viewer.dims.set_point(viewer.dims.ndim - 3, float(centre[0]))
    # zoom so the patch fills about 60% of the view: relative to the zoom at
    # which the whole image fits (public API only)
    viewer.reset_view()
    camera = camera_of(viewer)
    full_zoom = float(camera.zoom)
    image_extent = float(max(scale[-2:] * np.asarray(snap.spatial_shape[-2:])))
    patch_extent = float(max(hi[-2:] - lo[-2:]) + scale[-1])
    camera.zoom = full_zoom * image_extent / (1.6 * patch_extent)
    camera.center = tuple(float(c) for c in centre[-2:])
    (y0, x0), (y1, x1) = lo[-2:], hi[-2:]
    rect = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]])
    if ndim == 3:
        rect = np.column_stack([np.full(4, centre[0]), rect])
    if HIGHLIGHT in viewer.layers:
        shapes = viewer.layers[HIGHLIGHT]
        shapes.data = [rect]
        shapes.shape_type = ["rectangle"]
    else:
        viewer.add_shapes(
            [rect],
            shape_type="rectangle",
            name=HIGHLIGHT,
            edge_color="yellow",
            face_color="transparent",
            edge_width=2 * float(scale[-1]),
        )
