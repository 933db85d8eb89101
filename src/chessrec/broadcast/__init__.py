"""Live broadcast: a camera stream in, the game as PGN out, move by move.

``frames`` reads a video file, a folder of frames or a camera; ``settle`` tells a still board
from a hand over it; ``session`` recognises settled frames and follows the game with the beam
decoder (:class:`chessrec.decoding.GameBeam`), publishing each move once it is safe; ``pgn``
writes the PGN (atomically: valid at every moment) and the JSON-lines event log; ``serve``
offers the current PGN over HTTP for a broadcast platform to poll; ``cli`` is ``chessrec broadcast``.
"""
