"""Inference: the square-model interface, model cards, and the one loader for every backend.

- :mod:`chessrec.inference.card`: :class:`ModelCard`, what a saved model is and how to feed it;
- :mod:`chessrec.inference.model`: the :class:`SquareModel` protocol every caller uses, and a cascade;
- :mod:`chessrec.inference.torch_backend`: a torch network rebuilt from its card;
- :mod:`chessrec.inference.loader`: :func:`load_model`, one loader dispatching on the file.

Nothing here imports Lightning: recognising a photo needs only the model file and torch.  This
package's ``__init__`` imports nothing, so that training (which writes cards) does not depend on
the loaders of every backend.
"""
