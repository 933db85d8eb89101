"""Stage ``train``: fit the square classifier with Lightning, logging loss, accuracy and energy via dvclive."""

from chessrec.config import load_params
from chessrec.stages import run_stage
from chessrec.stages.paths import FEATURES, MODEL, TRAIN_LIVE


def main(params_path: str = "params.yaml") -> int:
    params = load_params(params_path)
    from dvclive.lightning import DVCLiveLogger

    from chessrec.energy import EnergyCallback, EnergyMeter
    from chessrec.training import fit

    logger = DVCLiveLogger(dir=str(TRAIN_LIVE), report=None, save_dvc_exp=False, dvcyaml=False)
    meter = EnergyMeter(sample_interval_s=params.energy.sample_interval_s,
                        cpu_watts_per_core=params.energy.cpu_watts_per_core)
    with meter:
        trainer = fit(params, FEATURES, MODEL, logger, [EnergyCallback(meter, plot_dir=TRAIN_LIVE / "plots")])
    if trainer.is_global_zero:
        m = trainer.callback_metrics
        print(f"train: {params.model.name} x {params.train.epochs} epochs ({trainer.precision}), "
              f"val/acc {float(m.get('val/acc', float('nan'))):.4f} -> {MODEL}")
    return 0


if __name__ == "__main__":
    run_stage(main, "train")
