"""Running workers: SLURM array jobs (sbatch rendered by a pure function, one subprocess wrapper) and local
workers for ``tornadostudy run``."""
