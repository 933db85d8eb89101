"""Reading each square twice: as cut, and mirrored left to right (test-time augmentation).

A piece looks like itself in a mirror (a knight faces the other way, still a knight), and the
networks are trained on randomly mirrored crops, so the mirrored crop is a second, partly
independent view of the same square.  The two readings are averaged in log space (a geometric
mean, renormalised): a class both views find likely stays likely, one that only one view finds
likely is damped.  It doubles the model's time per board and needs no retraining; on the default
run's test boards it lifts the `constrained` board accuracy by about nine points (docs/correctness.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from chessrec.geometry import CropSpec
from chessrec.inference.model import BoardCrops, BoardPredictions, SquareModel

#: probabilities are floored here before the log, so that one view's zero does not veto a class
PROBABILITY_FLOOR = 1e-12


class MirrorAveraged(BoardPredictions):
    """A square model that reads every crop as cut and mirrored and returns the geometric mean."""

    def __init__(self, model: SquareModel):
        self.model = model.model if isinstance(model, MirrorAveraged) else model

    @property
    def crop_specs(self) -> Mapping[str, CropSpec]:
        return self.model.crop_specs

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.class_names

    def predict_squares(self, crops: BoardCrops, squares: np.ndarray) -> np.ndarray:
        """(M, C) probabilities: one pass over the M crops and their M mirror images together."""
        both = {name: np.concatenate([c, c[..., ::-1]]) for name, c in crops.items()}
        probs = self.model.predict_squares(both, np.concatenate([squares, squares]))
        return mean_of_views(probs[: len(squares)], probs[len(squares):])


def mean_of_views(*views: np.ndarray) -> np.ndarray:
    """The renormalised geometric mean of several (M, C) probability arrays of the same squares."""
    log = np.mean([np.log(np.maximum(v, PROBABILITY_FLOOR)) for v in views], axis=0)
    out = np.exp(log - log.max(axis=1, keepdims=True))
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def with_views(model: SquareModel, mirror_average: bool) -> SquareModel:
    """``model`` read with mirror averaging when asked, else as it is."""
    if mirror_average:
        return MirrorAveraged(model)
    return model.model if isinstance(model, MirrorAveraged) else model
