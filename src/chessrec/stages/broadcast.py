"""Stage ``broadcast``: the trained model follows rendered games from video-like frames; moves right, delay, speed."""

from chessrec.config import load_params
from chessrec.stages import run_stage
from chessrec.stages.paths import BROADCAST_LIVE, MODEL


def main(params_path: str = "params.yaml") -> int:
    params = load_params(params_path)
    from chessrec.broadcast.benchmark import score_broadcast, summary_table
    from chessrec.broadcast.session import BroadcastOptions
    from chessrec.decoding import BeamOptions
    from chessrec.fileio import write_atomic
    from dvclive import Live

    b = params.broadcast
    options = BroadcastOptions(beam=BeamOptions(beam_width=b.beam_width))
    metrics = score_broadcast(MODEL, b.games, b.plies, b.image_size, b.seed, options, workers=b.workers)
    with Live(str(BROADCAST_LIVE), report=None, save_dvc_exp=False, dvcyaml=False) as live:
        for key, value in metrics.items():
            live.log_metric(key, value, plot=False)
    write_atomic(BROADCAST_LIVE / "broadcast.md", summary_table(metrics))
    print(f"broadcast: {b.games} games, {metrics['moves']} plies: moves right beam {metrics['beam/move_acc']:.3f} "
          f"(continuity {metrics['continuity/move_acc']:.3f}), games right beam {metrics['beam/game_acc']:.3f} "
          f"(continuity {metrics['continuity/game_acc']:.3f}), delay p50 {metrics['delay_p50_s']:.2f} s -> {BROADCAST_LIVE}")
    return 0


if __name__ == "__main__":
    run_stage(main, "broadcast")
