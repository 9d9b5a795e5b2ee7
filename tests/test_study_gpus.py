import pytest

from tornadostudy.errors import UserInputError
from tornadostudy.study.gpus import detect_gpus


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, (0, [])),
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, (2, ["2", "3"])),
        ({"CUDA_VISIBLE_DEVICES": ""}, (0, [])),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, (0, [])),
        ({"SLURM_JOB_GPUS": "1"}, (1, ["1"])),
        ({"SLURM_GPUS_ON_NODE": "2"}, (2, ["0", "1"])),
        ({"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "5,6"}, (1, ["0"])),
    ],
)
def test_gpus_come_from_slurm_and_cuda(env, expected):
    assert detect_gpus(None, env) == expected


def test_cli_count_wins_and_is_checked():
    assert detect_gpus(1, {"CUDA_VISIBLE_DEVICES": "2,3"}) == (1, ["2"])
    assert detect_gpus(2, {}) == (2, ["0", "1"])
    assert detect_gpus(0, {"CUDA_VISIBLE_DEVICES": "0,1"}) == (0, [])
    with pytest.raises(UserInputError, match="only 2 GPU"):
        detect_gpus(3, {"CUDA_VISIBLE_DEVICES": "0,1"})
    with pytest.raises(UserInputError, match="negative"):
        detect_gpus(-1, {})
