"""``chessrec finetune``: adapt the classifier to your own chess set from a few labelled photos.

    chessrec finetune white.jpg black.jpg --start-position --a1 bottom-left --a1 top-right --out models/my-set.ckpt
    chessrec finetune my-set/ --out models/my-set.ckpt --score my-set-test/

Photos of the starting position need no labels (say which image corner is nearest a1, once for
all photos or once per photo); a folder holds chesscog-style (``labels.json`` or one JSON per
photo) or ChessReD labels with their corners.  ``--score`` prints the base and the adapted model
side by side on other labelled photos of the same set.
"""

from __future__ import annotations

from pathlib import Path

from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS


def register(subparsers) -> None:
    from chessrec.config import FinetuneConfig

    defaults = FinetuneConfig()
    parser = subparsers.add_parser("finetune", help="adapt the classifier to your chess set from a few labelled photos",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+", type=Path,
                        help="a folder of labelled photos, or photo files with --start-position")
    parser.add_argument("--out", type=Path, required=True, help="the adapted checkpoint to write (*.ckpt)")
    parser.add_argument("--start-position", action="store_true",
                        help="the photos show the starting position (their labels are implied)")
    parser.add_argument("--a1", action="append", choices=A1_POSITIONS, default=None,
                        help="with --start-position: image corner nearest a1, once for all photos or once per photo "
                             "(default bottom-left: White at the bottom)")
    parser.add_argument("--model", default=None,
                        help="the base model, a .ckpt (default: the pipeline's model, else the released one)")
    parser.add_argument("--score", type=Path, default=None,
                        help="a folder of other labelled photos of the set: score base and adapted model on them")
    parser.add_argument("--steps", type=int, default=defaults.steps, help=f"optimizer steps (default {defaults.steps})")
    parser.add_argument("--lr", type=float, default=defaults.lr, help=f"peak learning rate (default {defaults.lr})")
    parser.add_argument("--freeze", choices=("none", "backbone"), default=defaults.freeze,
                        help="what keeps its base weights: nothing, or the convolutional backbone (default none)")
    parser.add_argument("--copies", type=int, default=defaults.copies,
                        help=f"augmented copies of each photo's crops (default {defaults.copies})")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--no-label-check", dest="check_labels", action="store_false",
                        help="do not refuse labels that contradict what the base model sees")
    parser.set_defaults(func=_finetune)


def _options(args):
    from pydantic import ValidationError

    from chessrec.config import FinetuneConfig

    try:
        return FinetuneConfig(steps=args.steps, lr=args.lr, freeze=args.freeze, copies=args.copies, seed=args.seed)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"--{err['loc'][0]} {err.get('input')!r}: {err['msg']}") from None


def _photos(args):
    from chessrec.adapt.photos import photos_from_folder, start_position_photos

    if args.start_position:
        folders = [p for p in args.photos if p.is_dir()]
        if folders:
            raise UserError(f"{folders[0]}: --start-position takes photo files, not a folder")
        missing = [p for p in args.photos if not p.is_file()]
        if missing:
            raise UserError(f"{missing[0]}: photo not found")
        a1 = args.a1 or ["bottom-left"]
        if len(a1) not in (1, len(args.photos)):
            raise UserError(f"--a1 given {len(a1)} times for {len(args.photos)} photos: give it once, or once per photo")
        sides = a1 * len(args.photos) if len(a1) == 1 else a1
        return [photo for path, side in zip(args.photos, sides) for photo in start_position_photos([path], side)]
    if args.a1:
        raise UserError("--a1 goes with --start-position; a labelled folder's corners already say where a1 is")
    if len(args.photos) != 1 or not args.photos[0].is_dir():
        raise UserError(f"{args.photos[0]}: give one folder of labelled photos, or photo files with --start-position")
    return photos_from_folder(args.photos[0])


def _finetune(args) -> int:
    from chessrec.adapt.finetune import finetune, score_models
    from chessrec.adapt.photos import photos_from_folder
    from chessrec.inference.loader import default_model

    options = _options(args)
    photos = _photos(args)
    held_out = photos_from_folder(args.score) if args.score is not None else None
    base = Path(args.model) if args.model else default_model()
    adapted = finetune(base, photos, args.out, options, check_labels=args.check_labels)
    print(f"finetune: adapted {base} on {len(photos)} photos in {adapted.fit_s:.0f} s "
          f"({adapted.energy_j:.0f} J, {adapted.energy_method}) -> {adapted.path}")
    if held_out is not None:
        for name, scores in score_models({"base": base, "adapted": adapted.path}, held_out).items():
            m = scores["constrained"]
            print(f"finetune: {name:8s} on {len(held_out)} held-out photos: {m['square_acc']:.2%} of squares, "
                  f"{m['board_acc']:.2%} of boards, {m['errors_per_board']:.2f} errors per board")
    return 0
