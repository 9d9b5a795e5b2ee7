import pytest

from tornadostudy.errors import UserInputError
from tornadostudy.report import add_time_to_target, default_target, fastest_reaching, paper_blocks, pivot_blocks, render


def _rec(bs, k, ep, wall, acc=0.9, aug="pre", gpus=1, **extra):
    return {
        "batch_size": bs,
        "data_multiplier": k,
        "epochs": ep,
        "augmentation": aug,
        "num_gpus": gpus,
        "wall_time_s": wall,
        "test_accuracy": acc,
        **extra,
    }


RECORDS = [
    _rec(128, 1, 5, 20.0),
    _rec(128, 2, 5, 40.0),
    _rec(256, 1, 5, 12.0),  # (256, 2, 5) missing
    _rec(128, 1, 10, 38.0, acc=0.93),
    _rec(128, 1, 10, 42.0, acc=0.95),  # a repeated cell
    _rec(128, 1, 5, 30.0, aug="live"),
]


def test_table3_layout_one_block_per_mode_gpu_count_and_epochs():
    blocks = [b for b in paper_blocks(RECORDS) if "Tables 2–5" in b.title]
    assert all(b.title.startswith("Wall time (s)") for b in blocks)
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
    assert pre10.table.loc[128, 1] == "40 ± 2.8 (n=2)"  # mean of 38 and 42, sample std 2.83
    assert pre10.numeric.loc[128, 1] == pytest.approx(40.0)


def test_table8_layout_epochs_by_batch_size():
    blocks = [b for b in paper_blocks(RECORDS) if b.title.startswith("Test accuracy")]
    assert all("Tables 8–9" in b.title for b in blocks)
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


# A study over GPUs too: 2 GPU counts × 2 multipliers × 2 epochs, batch 128, pre; one cell missing.
GPU_RECORDS = [
    _rec(128, k, ep, wall=100.0 * k * ep / g, gpus=g)
    for g in (1, 2)
    for k in (1, 2)
    for ep in (5, 10)
    if not (g == 2 and k == 2 and ep == 10)
]


def test_tables_6_and_7_gpu_layouts_against_a_hand_computed_pivot():
    blocks = paper_blocks(GPU_RECORDS)
    t6 = [b for b in blocks if "Table 6" in b.title]
    t7 = [b for b in blocks if "Table 7" in b.title]
    assert [b.title.split(" — ")[1] for b in t6] == [
        "augmentation=pre, batch_size=128, epochs=5",
        "augmentation=pre, batch_size=128, epochs=10",
    ]
    ep10 = t6[1]
    assert list(ep10.table.index) == [1, 2] and list(ep10.table.columns) == [1, 2]
    assert ep10.numeric.loc[1, 2] == pytest.approx(2000.0) and ep10.numeric.loc[2, 1] == pytest.approx(500.0)
    assert ep10.table.loc[2, 2] == "", "the missing (2 GPUs, ×2, 10 epochs) cell stays missing"
    k1 = next(b for b in t7 if b.title.endswith("data_multiplier=1"))
    assert list(k1.table.columns) == [5, 10] and k1.table.loc[2, 5] == "250"
    # Batch size and augmentation do not vary: the Tables 2–5 layout has one axis, so it is left out.
    assert not any("Tables 2–5" in b.title for b in blocks)


def test_any_metric_in_every_layout_and_unknown_metrics_are_named():
    records = [dict(r, test_auc=0.7 + r["epochs"] / 100) for r in GPU_RECORDS]
    blocks = paper_blocks(records, ("test_auc",))
    assert blocks and all(b.title.startswith("Test ROC AUC") and b.value == "test_auc" for b in blocks)
    # Only the layouts whose two axes vary here (batch size is fixed, so not Tables 2–5 or 8–9).
    assert {b.title.split("(paper ")[1].split(")")[0] for b in blocks} == {"Table 6", "Table 7"}
    with pytest.raises(UserInputError, match=r"--metrics names 'test_csi'.*available: .*test_accuracy"):
        paper_blocks(records, ("test_csi",))


def test_time_to_target_is_wall_time_when_reached_and_says_not_reached_otherwise():
    records = [
        _rec(128, 1, 5, 20.0, acc=0.90),
        _rec(128, 1, 10, 40.0, acc=0.95),
        _rec(256, 1, 5, 12.0, acc=0.80),
        _rec(256, 1, 10, 25.0, acc=0.94),
    ]
    assert default_target(records, "test_accuracy") == pytest.approx(0.95 * 0.99)
    marked = add_time_to_target(records, "test_accuracy", 0.93)
    assert [r["time_to_target_s"] for r in marked][1::2] == [40.0, 25.0]
    assert all(r["time_to_target_s"] != r["time_to_target_s"] for r in marked[0::2])  # NaN: not reached
    table = pivot_blocks(marked, "epochs", "batch_size", "time_to_target_s")[0].table
    assert table.loc[5, 128] == "not reached" and table.loc[10, 256] == "25"
    params = ["batch_size", "data_multiplier", "epochs", "augmentation", "num_gpus"]
    best = fastest_reaching(records, params, "test_accuracy", 0.93)
    assert (best["batch_size"], best["epochs"], best["wall_time_s"]) == (256, 10, 25.0)
    assert fastest_reaching(records, params, "test_accuracy", 0.99) is None
    # Lower-is-better skills aim the other way.
    far = [dict(r, test_far=0.1 * i) for i, r in enumerate(records)]
    assert default_target(far, "test_far") == pytest.approx(0.0)
    assert fastest_reaching(far, params, "test_far", 0.15)["wall_time_s"] == 20.0


def test_live_over_pre_ratios_compare_configurations_that_differ_only_in_augmentation():
    from tornadostudy.report.tables import augmentation_ratio_blocks

    recs = [
        {
            "augmentation": aug,
            "batch_size": bs,
            "epochs": ep,
            "data_multiplier": 1,
            "num_gpus": g,
            "wall_time_s": ep * {"pre": 10, "live": 11, "live_cpu": 130 if g == 0 else 19}[aug],
        }
        for aug in ("pre", "live", "live_cpu")
        for bs in (128, 256)
        for ep in (5, 10)
        for g in (0, 1)
    ]
    blocks = augmentation_ratio_blocks(recs, ["augmentation", "batch_size", "data_multiplier", "epochs", "num_gpus"])
    assert [b.where for b in blocks] == [{"num_gpus": 0}, {"num_gpus": 1}]
    cpu, gpu = (b.numeric for b in blocks)
    assert cpu.loc[128, "live_cpu ÷ pre"] == pytest.approx(13.0)
    assert gpu.loc[256, "live_cpu ÷ pre"] == pytest.approx(1.9)
    assert gpu.loc[128, "live ÷ pre"] == pytest.approx(1.1) and blocks[0].table.loc[128, "live_cpu ÷ pre"] == "13×"
    assert augmentation_ratio_blocks([r for r in recs if r["augmentation"] != "pre"], ["batch_size", "num_gpus"]) == []
