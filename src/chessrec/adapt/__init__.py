"""Adapting the trained classifier to a user's own chess set from a handful of labelled photos.

``photos`` turns a labelled folder (chesscog-style or ChessReD) or photos of the starting
position into :class:`SetPhoto` records and checks their labels against what the base model
sees; ``augment`` cuts many perturbed copies of each photo's crops (the few real crops are all
there is); ``finetune`` continues training the base model on them with Lightning and writes a
checkpoint that records what it was adapted from and on which photos; ``cli`` is
``chessrec finetune``.  Nothing here is imported by inference: an adapted checkpoint is an
ordinary model file.
"""
