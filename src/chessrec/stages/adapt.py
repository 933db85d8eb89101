"""Stage ``adapt``: the trained model adapted to a set it never saw, from a few photos; base and
adapted model scored side by side on the set's other photos."""

from chessrec.config import load_params
from chessrec.stages import run_stage
from chessrec.stages.paths import ADAPT_LIVE, ADAPT_SET, ADAPTED_MODEL, MODEL


def main(params_path: str = "params.yaml") -> int:
    params = load_params(params_path)
    from pathlib import Path

    from chessrec.adapt.experiment import adapt_and_score, folder_set, render_set, summary_table
    from chessrec.errors import UserError
    from chessrec.fileio import write_atomic
    from dvclive import Live

    a = params.adapt
    if a.source == "folder":
        if not a.path:
            raise UserError("params.yaml: adapt.source is folder but adapt.path names no folder")
        adapt, test = folder_set(Path(a.path), a.train_photos)
        what = f"the photos in {a.path}"
        ADAPT_SET.mkdir(parents=True, exist_ok=True)  # the stage's output folder exists either way
    else:
        adapt, test = render_set(ADAPT_SET, a, params.seed)
        what = f"a rendered set with piece colours never trained on ({a.style} pieces, {a.pieces}, {a.board} board)"
    metrics = adapt_and_score(MODEL, ADAPTED_MODEL, adapt, test, a, energy=params.energy.model_dump(),
                              check_labels=a.source == "folder")
    with Live(str(ADAPT_LIVE), report=None, save_dvc_exp=False, dvcyaml=False) as live:
        for key, value in metrics.items():
            live.log_metric(key, value, plot=False)
    write_atomic(ADAPT_LIVE / "adapt.md", summary_table(metrics, what))
    print(f"adapt: {what}: squares {metrics['base/square_acc']:.4f} -> {metrics['adapted/square_acc']:.4f}, "
          f"boards {metrics['base/board_acc']:.3f} -> {metrics['adapted/board_acc']:.3f} on {len(test)} photos "
          f"({metrics['fit_s']:.0f} s) -> {ADAPTED_MODEL}")
    return 0


if __name__ == "__main__":
    run_stage(main, "adapt")
