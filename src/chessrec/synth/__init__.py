"""Synthetic photos of physical chess sets with exact labels: the data ``dvc repro`` runs on.

``render_board`` photographs one position; ``render_dataset`` writes a ChessReD-format data
set of game sequences and random positions; ``contact_sheet`` shows a sample of it.
"""

from chessrec.synth.dataset import contact_sheet, render_dataset
from chessrec.synth.render import ChessSet, RenderedBoard, render_board

__all__ = ["ChessSet", "RenderedBoard", "contact_sheet", "render_board", "render_dataset"]
