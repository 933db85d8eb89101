"""The names of every pluggable component, declared once.

:mod:`chessrec.config` validates choices against these tuples, so ``model=vgg`` fails before any
work and without importing torch; each implementing module builds its table from the same
tuple (``dict(zip(NAMES, implementations, strict=True))``), so adding an implementation without
its name, or a name without an implementation, fails at import.
"""

#: square-classifier backbones, :data:`chessrec.models.ARCHITECTURES`
ARCHITECTURES = ("tiny_cnn", "strided_cnn", "resnet18", "mobilenet")
#: classifier heads, :class:`chessrec.models.SquareClassifier`
HEADS = ("single", "two_stage")
#: decoders of one board, :data:`chessrec.decoding.DECODERS`
BOARD_DECODERS = ("argmax", "greedy", "constrained", "topk_legal")
#: decoders of a game's frames in order, :data:`chessrec.decoding.SEQUENCE_DECODERS`
SEQUENCE_DECODERS = ("continuity", "beam")
DECODERS = (*BOARD_DECODERS, *SEQUENCE_DECODERS)
#: where the ``prepare`` stage gets its photos, :func:`chessrec.datasets.load_dataset`
DATA_SOURCES = ("synthetic", "chessred", "chesscog")
#: how squares are cut, :class:`chessrec.geometry.CropSpec`
CROP_KINDS = ("plain", "height_aware")
#: what a height-aware box bounds on its square, :class:`chessrec.geometry.CropSpec`
CROP_FOOTPRINTS = ("square", "disc")
#: piece styles of the renderer, :func:`chessrec.synth.pieces.piece_mesh` (all drawn in training)
PIECE_STYLES = ("staunton", "club", "modern")
#: board palettes of the renderer, :data:`chessrec.synth.render.BOARD_PALETTES` (all drawn in training)
BOARD_PALETTES = ("green-mat", "vinyl-tournament", "brown-wood", "maple-walnut", "grey", "blue", "black-white",
                  "red-buff")
#: piece colours no training render draws, :data:`chessrec.synth.render.HELD_OUT_PIECES` (sets to adapt to)
HELD_OUT_PIECES = ("red-cream", "blue-white")
#: pieces' widths relative to their style's meshes, heights kept (:class:`chessrec.synth.render.ChessSet`).
#: Tournament sets on roll-up mats stand slimmer on their squares than the meshes (a regulation pawn's
#: base spans about 0.4-0.5 of a 2.25" square, the staunton mesh's 0.62): training draws down to that
GIRTH_RANGE = (0.65, 1.0)
