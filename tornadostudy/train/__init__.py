"""Training one trial: a plain params object in, a result out, progress through callbacks.

Imports neither Optuna nor MLflow; TensorFlow only inside the Keras trainer.
"""

from tornadostudy.train.params import TrialCallbacks, TrialContext, TrialParams, TrialResult

__all__ = ["TrialCallbacks", "TrialContext", "TrialParams", "TrialResult", "make_trainer"]


def make_trainer(trainer_spec, data_folder, n_train_hint: int | None = None):
    """The trainer named by a spec's ``[trainer]`` table, bound to a prepared data folder."""
    if trainer_spec.kind == "simulate":
        from tornadostudy.train.simulate import SimulatedTrainer

        return SimulatedTrainer(trainer_spec, data_folder)
    from tornadostudy.train.keras_trainer import KerasTrainer

    return KerasTrainer(trainer_spec, data_folder)
