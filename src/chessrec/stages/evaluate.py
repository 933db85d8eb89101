"""Stage ``evaluate``: every decoder on the same test-set predictions; metrics, tables and plots via dvclive."""

from chessrec.config import load_params
from chessrec.stages import run_stage
from chessrec.stages.paths import EVAL_LIVE, FEATURES, MODEL


def main(params_path: str = "params.yaml") -> int:
    params = load_params(params_path)
    from chessrec.evaluation import run_evaluation

    e = params.evaluate
    run_evaluation(
        FEATURES / "test", MODEL, EVAL_LIVE, decoders=e.decoders, best_decoder=e.best_decoder,
        topk=e.topk, strict=e.strict, promotion_cost=e.promotion_cost, energy=params.energy.model_dump(), mirror_average=e.mirror_average,
    )
    return 0


if __name__ == "__main__":
    run_stage(main, "evaluate")
