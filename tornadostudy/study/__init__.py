"""The study side: storage, atomic cell claims, create, workers, status. The only place importing Optuna."""

__all__: list[str] = []
