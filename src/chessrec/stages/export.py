"""Stage ``export``: the trained model to ONNX (fp32, int8), each artefact scored on the test split."""

from chessrec.config import load_params
from chessrec.stages import run_stage
from chessrec.stages.paths import EXPORT_LIVE, FEATURES, MODEL, ONNX_MODEL


def main(params_path: str = "params.yaml") -> int:
    params = load_params(params_path)
    from chessrec.decoding import DecodeOptions
    from chessrec.deploy.compare import export_and_compare

    x, e = params.export, params.evaluate
    export_and_compare(MODEL, FEATURES / "train", FEATURES / "test", ONNX_MODEL, EXPORT_LIVE, int8=x.int8,
                       calibration_boards=x.calibration_boards, threads=x.threads, best_decoder=e.best_decoder,
                       options=DecodeOptions(strict=e.strict, topk=e.topk, promotion_cost=e.promotion_cost),
                       energy=params.energy.model_dump())
    return 0


if __name__ == "__main__":
    run_stage(main, "export")
