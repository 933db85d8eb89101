"""chessrec: read the position off a photo of a physical chessboard, reproducibly."""

__version__ = "0.1.0"
