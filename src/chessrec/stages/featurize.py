"""Stage ``featurize``: perspective-aware square crops of every board in data/raw."""

from chessrec.config import load_params
from chessrec.stages import run_stage
from chessrec.stages.paths import FEATURES, PLOTS, RAW


def main(params_path: str = "params.yaml") -> int:
    params = load_params(params_path)
    from chessrec.datasets import load_dataset
    from chessrec.features import featurize, load_features
    from chessrec.geometry import crop_contact_sheet

    f = params.features
    spec = f.crop_spec()
    samples = load_dataset("synthetic", RAW).samples
    counts = featurize(samples, spec, FEATURES, workers=params.data.workers)
    crop_contact_sheet(list(load_features(FEATURES / "test")["crops"][:6]), PLOTS / "crops.png")
    h, w = spec.output_shape
    print(f"featurize: {sum(counts.values())} boards ({counts}) -> {FEATURES}, {f.crop} crops {h}x{w}")
    return 0


if __name__ == "__main__":
    run_stage(main, "featurize")
