"""Stage ``featurize``: perspective-aware square crops of every board in data/raw."""

from chessrec.config import load_params
from chessrec.stages import run_stage
from chessrec.stages.paths import FEATURES, PLOTS, RAW


def main(params_path: str = "params.yaml") -> int:
    params = load_params(params_path)
    from chessrec.datasets import load_dataset
    from chessrec.features import crops_by_spec, featurize, load_features
    from chessrec.geometry import crop_contact_sheet
    from chessrec.reproducibility import write_record

    specs = params.features.crop_specs()
    samples = load_dataset("synthetic", RAW).samples
    counts = featurize(samples, specs, FEATURES, workers=params.data.workers)
    first, *_ = specs  # the contact sheet shows the first spec's crops
    crop_contact_sheet(list(crops_by_spec(load_features(FEATURES / "test"))[first][:6]), PLOTS / "crops.png")
    write_record("featurize")  # the instruction set these bytes were made on (chessrec.reproducibility)
    shapes = ", ".join(f"{name}: {s.kind} {s.output_shape[0]}x{s.output_shape[1]}" for name, s in specs.items())
    print(f"featurize: {sum(counts.values())} boards ({counts}) -> {FEATURES}, crops {shapes}")
    return 0


if __name__ == "__main__":
    run_stage(main, "featurize")
