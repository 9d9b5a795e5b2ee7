import pytest

from tornadostudy.errors import TrainingError
from tornadostudy.spec import TrainerSpec
from tornadostudy.train import TrialCallbacks, TrialContext, TrialParams
from tornadostudy.train.simulate import SimulatedTrainer, modelled_seconds


class Recorder(TrialCallbacks):
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, epoch, metrics):
        self.epochs.append((epoch, metrics))


def _params(**kw):
    base = dict(epochs=4, batch_size=128, learning_rate=1e-3, data_multiplier=1, num_gpus=1, augmentation="pre")
    return TrialParams(**{**base, **kw})


def test_deterministic_curves_and_callbacks(prepared_small):
    trainer = SimulatedTrainer(TrainerSpec(kind="simulate", evaluate_every_epoch=True), prepared_small)
    a, b = Recorder(), Recorder()
    ra = trainer.train(_params(), a, TrialContext(3))
    rb = trainer.train(_params(), b, TrialContext(3))
    assert [e for e, _ in a.epochs] == [1, 2, 3, 4]
    assert a.epochs == b.epochs and ra.test == rb.test
    assert {"loss", "accuracy", "epoch_time_s", "val_loss", "val_accuracy"} <= set(a.epochs[0][1])
    assert ra.wall_time_s == pytest.approx(sum(ra.times.values()))
    assert set(ra.times) == {"data_s", "first_epoch_s", "steady_epochs_s", "eval_s", "test_s"}
    metrics = ra.metrics()
    assert {"wall_time_s", "test_auc", "test_accuracy", "test_csi", "train_loss"} <= set(metrics)


def test_cost_model_follows_the_papers_trends():
    base = modelled_seconds(_params(), 76_377)
    assert sum(modelled_seconds(_params(data_multiplier=4), 76_377).values()) > 3 * sum(base.values())
    assert sum(modelled_seconds(_params(batch_size=4096), 76_377).values()) < sum(base.values())
    assert sum(modelled_seconds(_params(num_gpus=4), 76_377).values()) > sum(base.values())


def test_failure_injection_is_deterministic_per_attempt(prepared_small):
    trainer = SimulatedTrainer(TrainerSpec(kind="simulate", fail_probability=0.5), prepared_small)
    outcomes = []
    for attempt in range(1, 13):
        try:
            trainer.train(_params(), TrialCallbacks(), TrialContext(1, attempt=attempt))
            outcomes.append(True)
        except TrainingError as exc:
            assert exc.retryable and "simulated failure" in str(exc)
            outcomes.append(False)
    assert True in outcomes and False in outcomes
