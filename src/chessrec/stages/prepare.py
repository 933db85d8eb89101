"""Stage ``prepare``: render the embedded synthetic data set, or normalise a real one, into data/raw."""

from chessrec.config import load_params
from chessrec.stages import run_stage
from chessrec.stages.paths import PLOTS, RAW


def main(params_path: str = "params.yaml") -> int:
    params = load_params(params_path)
    from chessrec.datasets import import_dataset
    from chessrec.reproducibility import write_record
    from chessrec.synth import contact_sheet, render_dataset

    d = params.data
    if d.source == "synthetic":
        samples = render_dataset(
            RAW, n_games=d.n_games, moves_per_game=d.moves_per_game, n_random=d.n_random,
            image_size=d.image_size, seed=params.seed, workers=d.workers,
        )
    else:
        samples = import_dataset(d.source, d.path, RAW, skip_bad=d.skip_bad)
    contact_sheet(samples, PLOTS / "samples.jpg", n=16, tile=224)
    write_record("prepare")  # the instruction set these bytes were made on (chessrec.reproducibility)
    return 0


if __name__ == "__main__":
    run_stage(main, "prepare")
