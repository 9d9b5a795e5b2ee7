"""The head of every report: objectives first, the skill scores, the accuracy baseline, worse-than-random flags."""

from tornadostudy.report import ReportOptions, build_report
from tornadostudy.report.summary import summary

PARAMS = ["batch_size", "epochs", "learning_rate"]


def records():
    out = []
    for n, (bs, ep) in enumerate([(128, 2), (128, 4), (512, 2), (512, 4)]):
        auc = {128: 0.70, 512: 0.30}[bs] + 0.02 * ep
        out.append(
            {
                "trial": n,
                "batch_size": bs,
                "epochs": ep,
                "learning_rate": 0.001,
                "augmentation": "pre",
                "num_gpus": 1,
                "data_multiplier": 1,
                "train_samples": 2000,
                "wall_time_s": 10.0 * ep * 128 / bs,
                "test_auc": auc,
                "test_bss": auc - 0.6,
                "test_csi": 0.1,
                "test_pod": 0.2,
                "test_far": 0.8,
                "test_accuracy": 0.934,
                "test_accuracy_baseline": 0.9343,
            }
        )
    return out


OBJECTIVES = (("test_auc", "maximize"), ("wall_time_s", "minimize"))


def test_the_summary_ranks_by_the_first_objective_and_flags_worse_than_random():
    (block,), notes = summary(records(), PARAMS, OBJECTIVES)
    table = block.table
    assert list(table.columns[:4]) == ["batch_size", "epochs", "test_auc", "wall_time_s"], "objectives first"
    assert {"test_bss", "test_csi", "test_pod", "test_far", "test_accuracy"} <= set(table.columns)
    assert [float(v) for v in table["test_auc"]] == [0.78, 0.74, 0.38, 0.34]
    flags = list(table["flag"])
    assert flags[:2] == ["", ""]
    assert flags[2] == "worse than random: 4 steps per epoch at batch size 512 (16 updates in all)"
    assert "learning_rate" not in table.columns, "a parameter that does not vary is not a column"
    assert notes[0] == "Objectives of the study: test_auc (maximize), wall_time_s (minimize)."
    assert "always forecasting 'no tornado' scores test_accuracy 0.9343" in notes[1]
    assert "2 configuration(s) forecast worse than random" in notes[2]


def test_a_report_opens_with_the_summary_and_its_notes():
    report = build_report("s", records(), PARAMS, ReportOptions(objectives=OBJECTIVES, skill="test_auc"))
    assert report.blocks[0].title.startswith("Summary: configurations by test_auc")
    head = report.text.split("| rank |")[0]
    assert "Objectives of the study: test_auc" in head and "Accuracy baseline" in head
    tables_8_9 = [b for b in report.blocks if b.layout == "Tables 8–9"]
    assert {b.value for b in tables_8_9} == {"test_auc", "wall_time_s"}, "the study's skill, not accuracy"
