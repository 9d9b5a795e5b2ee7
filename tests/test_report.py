import pytest

from tornadostudy.errors import UserInputError
from tornadostudy.report import paper_blocks, pivot_blocks, render


def _rec(bs, k, ep, wall, acc=0.9, aug="pre", gpus=1, **extra):
    return {"batch_size": bs, "data_multiplier": k, "epochs": ep, "augmentation": aug, "num_gpus": gpus,
            "wall_time_s": wall, "test_accuracy": acc, **extra}  # fmt: skip


RECORDS = [
    _rec(128, 1, 5, 20.0), _rec(128, 2, 5, 40.0), _rec(256, 1, 5, 12.0),  # (256, 2, 5) missing
    _rec(128, 1, 10, 38.0, acc=0.93), _rec(128, 1, 10, 42.0, acc=0.95),  # a repeated cell
    _rec(128, 1, 5, 30.0, aug="live"),
]  # fmt: skip


def test_table3_layout_one_block_per_mode_gpu_count_and_epochs():
    blocks = [b for b in paper_blocks(RECORDS) if b.title.startswith("Wall time")]
    assert [b.title.split(" — ")[1] for b in blocks] == [
        "augmentation=live, num_gpus=1, epochs=5",
        "augmentation=pre, num_gpus=1, epochs=5",
        "augmentation=pre, num_gpus=1, epochs=10",
    ]
    pre5 = blocks[1]
    assert list(pre5.table.index) == [128, 256] and list(pre5.table.columns) == [1, 2]
    assert pre5.table.loc[128, 1] == "20" and pre5.table.loc[128, 2] == "40" and pre5.table.loc[256, 1] == "12"
    assert pre5.table.loc[256, 2] == "", "a missing cell is missing, not zero"
    assert pre5.table.loc[128, 1] != "0"
    pre10 = blocks[2]
    assert pre10.table.loc[128, 1] == "40 ± 2.8"  # mean of 38 and 42, sample std 2.83
    assert pre10.numeric.loc[128, 1] == pytest.approx(40.0)


def test_table8_layout_epochs_by_batch_size():
    blocks = [b for b in paper_blocks(RECORDS) if b.title.startswith("Test accuracy")]
    pre = next(b for b in blocks if "augmentation=pre" in b.title and "data_multiplier=1" in b.title)
    assert list(pre.table.index) == [5, 10] and list(pre.table.columns) == [128, 256]
    assert pre.numeric.loc[10, 128] == pytest.approx(0.94)
    assert pre.table.loc[10, 256] == ""


def test_generic_pivot_and_formats():
    blocks = pivot_blocks(RECORDS, "epochs", "augmentation", "wall_time_s", agg="max")
    assert len(blocks) == 1 and blocks[0].numeric.loc[10, "pre"] == 42.0
    md = render(blocks, "md")
    assert "| epochs \\ augmentation | live | pre |" in md and "—" in md
    csv = render(blocks, "csv")
    assert csv.splitlines()[1] == "epochs,live,pre" and csv.splitlines()[3] == "10,,42"


def test_layouts_need_their_dimensions_and_bad_pivots_are_named():
    assert paper_blocks([{"batch_size": 1, "wall_time_s": 2.0}]) == []
    assert "no completed trials" in render([], "md")
    with pytest.raises(UserInputError, match="'gpus' is not in this study's trials"):
        pivot_blocks(RECORDS, "gpus", "epochs", "wall_time_s")
    with pytest.raises(UserInputError, match="--agg"):
        pivot_blocks(RECORDS, "epochs", "batch_size", "wall_time_s", agg="sum")
    with pytest.raises(UserInputError, match="--format"):
        render([], "xlsx")
