"""One real Keras trial per augmentation mode, on a small prepared set."""

import math

import pytest

from tornadostudy.spec import TrainerSpec
from tornadostudy.train import TrialCallbacks, TrialContext, TrialParams

pytestmark = [pytest.mark.tf, pytest.mark.slow]


class Recorder(TrialCallbacks):
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, epoch, metrics):
        self.epochs.append((epoch, metrics))


@pytest.mark.parametrize("augmentation", ["pre", "live"])
def test_a_keras_trial_reports_times_curves_and_scores(prepared_small, augmentation):
    pytest.importorskip("tensorflow")
    from tornadostudy.train.keras_trainer import KerasTrainer

    trainer = KerasTrainer(TrainerSpec(kind="keras", evaluate_every_epoch=True, jit_compile=False), prepared_small)
    params = TrialParams(
        epochs=2, batch_size=64, learning_rate=1e-3, data_multiplier=2, num_gpus=0, augmentation=augmentation
    )
    recorder = Recorder()
    result = trainer.train(params, recorder, TrialContext(0))
    assert [e for e, _ in recorder.epochs] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s"} <= set(recorder.epochs[0][1])
    assert set(result.times) == {"data_s", "first_epoch_s", "steady_epochs_s", "eval_s", "test_s"}
    assert result.times["eval_s"] > 0, "per-epoch evaluation is timed as its own part"
    assert all(m["epoch_time_s"] > 0 for _, m in recorder.epochs)
    assert result.wall_time_s >= sum(result.times.values()) * 0.99
    assert {"accuracy", "auc", "pod", "far", "csi", "brier"} <= set(result.test)
    assert 0 <= result.test["accuracy"] <= 1 and math.isfinite(result.test["brier"])
    n_train = trainer.data.manifest["counts"]["train"]
    assert result.info["train_samples"] == 2 * n_train  # k = 2 in both modes: exactly two passes' worth
    assert result.info["per_replica_batch"] == 64


@pytest.mark.parametrize("augmentation", ["pre", "live", "live_cpu"])
def test_every_augmentation_mode_trains_on_the_same_balanced_rows(prepared_paper_balance, augmentation):
    """Pre, live and live_cpu see the same samples per epoch at the same positive fraction (the paper's balance)."""
    pytest.importorskip("tensorflow")
    from tornadostudy.train.keras_trainer import KerasTrainer

    trainer = KerasTrainer(TrainerSpec(kind="keras", jit_compile=False, augment_workers=2), prepared_paper_balance)
    try:
        params = TrialParams(
            epochs=1, batch_size=128, learning_rate=1e-3, data_multiplier=2, num_gpus=0, augmentation=augmentation
        )
        result = trainer.train(params, Recorder(), TrialContext(0))
    finally:
        trainer.close()
    manifest = trainer.data.manifest
    k2 = manifest["train_sets"]["2"]
    assert result.info["train_samples"] == k2["size"]
    assert result.info["train_positive_fraction"] == pytest.approx(k2["positives"] / k2["size"])
    assert 0.3 < result.info["train_positive_fraction"] < 0.7
    assert math.isfinite(result.test["brier"])


def test_a_trial_needing_more_gpus_than_visible_is_a_fault_of_the_machine_not_of_the_cell(prepared_small):
    pytest.importorskip("tensorflow")
    from tornadostudy.errors import EnvironmentFault
    from tornadostudy.train.keras_trainer import KerasTrainer

    trainer = KerasTrainer(TrainerSpec(kind="keras"), prepared_small)
    params = TrialParams(epochs=1, batch_size=64, learning_rate=1e-3, data_multiplier=1, num_gpus=8, augmentation="pre")
    with pytest.raises(EnvironmentFault, match="needs 8 GPU"):
        trainer.train(params, TrialCallbacks(), TrialContext(0))
    with pytest.raises(EnvironmentFault, match="to bind 8 GPU"):
        trainer.check_environment(8)
    trainer.check_environment(0)  # the CPU and the prepared files are all there


class StopAfter(Recorder):
    """Asks for a stop at the given number of batch-boundary polls."""

    def __init__(self, polls):
        super().__init__()
        self.polls = polls

    def should_stop(self):
        self.polls -= 1
        return self.polls < 0


def test_an_interrupted_trial_checkpoints_and_resumes_at_that_epoch(prepared_small, tmp_path):
    pytest.importorskip("tensorflow")
    from tornadostudy.train.checkpoint import TrialInterrupted, load_state
    from tornadostudy.train.keras_trainer import KerasTrainer

    trainer = KerasTrainer(TrainerSpec(kind="keras", jit_compile=False), prepared_small)
    params = TrialParams(epochs=3, batch_size=32, learning_rate=1e-3, data_multiplier=1, num_gpus=0, augmentation="pre")
    n_batches = math.ceil(trainer.data.manifest["counts"]["train"] / 32)
    context = TrialContext(0, checkpoint_dir=tmp_path / "ckpt")
    first = StopAfter(n_batches + 3)  # stop a few batches into epoch 2
    with pytest.raises(TrialInterrupted) as info:
        trainer.train(params, first, context)
    assert info.value.epoch == 1 and info.value.checkpointed
    assert [e for e, _ in first.epochs] == [1], "the partial epoch 2 is not reported"
    state = load_state(tmp_path / "ckpt")
    assert state["epoch"] == 1 and len(state["history"]) == 1
    saved_steps = int(__import__("numpy").load(tmp_path / "ckpt" / "optimizer.npz")["arr_0"])
    assert saved_steps == n_batches + 3 + 1, "optimizer state saved at the batch boundary"

    second = Recorder()
    result = trainer.train(params, second, context)
    assert [e for e, _ in second.epochs] == [2, 3], "resumes at the checkpointed epoch"
    assert len(result.history) == 3 and result.history[0] == state["history"][0]
    assert result.info["resumed_from_epoch"] == 1 and result.info["attempts_run"] == 2
    assert result.wall_time_s == pytest.approx(sum(result.times.values()))
