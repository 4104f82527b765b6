"""Between the viewer's model store and an annotation session on disk: what
"Save session" writes and "Open session" brings back (the Model versions widget)."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_resunet.core.session import AnnotationSession
from napari_resunet.ui._layers import add_saved_labels


def write_session(store: Any, session: AnnotationSession, labels: Any) -> None:
    """Record the reviewed and held-back patches and, with a ``labels`` layer, the
    labels and which voxels the user edited."""
    for sl in store.reviewed:
        if sl not in store.held_back:
            session.mark_reviewed(sl)
    for sl in store.held_back:
        session.mark_reviewed(sl, held_back=True)
    if labels is not None:
        data = np.asarray(labels.data)
        session.save_corrections(data, store.track(labels).refresh(data))


def read_session(
    viewer: Any, store: Any, session: AnnotationSession
) -> tuple[Any, str, Any]:
    """Bring a session back: its reviewed patches into ``store``, its saved labels
    into a layer (see :func:`~napari_resunet.ui._layers.add_saved_labels`) and
    its last version as the store's model.

    Returns:
        ``(layer, beside, model)``: the labels layer or None, the name of the
        working layer it was opened beside ("" if none) and the model or None.
    """
    store.reviewed[:] = session.reviewed + session.held_back
    store.held_back[:] = session.held_back
    layer, beside = None, ""
    saved = session.load_corrections()
    if saved is not None:
        layer, beside = add_saved_labels(viewer, store, session.image, *saved)
    model = None
    if session.versions:
        last = session.versions[-1].number
        model = session.load_version(last)
        store.set_model(model, f"version v{last}")
    return layer, beside, model
