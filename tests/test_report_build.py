"""A whole report from trial records: tables, figures, notes, files, and logging to MLflow."""

import math

import pytest

from tests.test_report_plots import PARAMS, records
from tornadostudy.errors import TrackingError, UserInputError
from tornadostudy.report import Pivot, ReportOptions, build_report, log_report


def curve(run_id, key):
    return [(1, 0.9), (2, 0.95)]


def test_html_report_of_a_full_study_has_every_layout_and_at_least_four_figures(tmp_path):
    recs = records(gpus=(1, 2, 4))
    report = build_report("s", recs, PARAMS, ReportOptions(fmt="html", out=tmp_path), read_curve=curve)
    layouts = {b.title.split("(paper ")[1].split(")")[0] for b in report.blocks if b.layout}
    assert layouts == {"Tables 2–5", "Table 6", "Table 7", "Tables 8–9"}
    assert len(report.figures.made) >= 4
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(report.figures.made)
    assert page.count("<table>") == len(report.blocks)
    assert {p.name for p in report.files} >= {"report.html", "pareto.png", "speedup_vs_gpus.png"}
    # A value checked against a hand-computed mean: wall = ep·k·(1000/bs + 1)/g at (pre, bs 128, k 2, ep 4, 4 GPUs).
    t6 = next(
        b
        for b in report.blocks
        if "Table 6" in b.title and b.title.endswith("augmentation=pre, batch_size=128, epochs=4")
    )
    assert t6.numeric.loc[4, 2] == pytest.approx(4 * 2 * (1000 / 128 + 1) / 4)
    assert "Fastest configuration reaching the target" in page


def test_default_target_and_fastest_configuration_note():
    recs = records()
    report = build_report("s", recs, PARAMS, ReportOptions(fmt="md"))
    best = max(r["test_accuracy"] for r in recs)
    assert f"test_accuracy ≥ {best * 0.99:.4g} (within 1 % of the best trial)" in report.text
    # Only 4 epochs reach it; the least wall time among those: multiplier 1, batch 512, 2 GPUs.
    note = next(n for n in report.notes if n.startswith("Fastest configuration"))
    assert all(s in note for s in ("epochs=4", "data_multiplier=1", "batch_size=512", "num_gpus=2", "5.906 s"))
    assert report.figures.made == [] and report.files == [], "no folder and not HTML: tables only"


def test_time_to_target_tables_and_a_target_nobody_reaches():
    report = build_report("s", records(), PARAMS, ReportOptions(metrics=("time_to_target_s",), target=0.99))
    assert "No configuration reached test_accuracy ≥ 0.99" in report.text
    assert "not reached" in report.text and "| 128 | not reached | not reached |" in report.text


def test_pivot_and_bad_options_are_one_line_errors():
    pivot = build_report("s", records(), PARAMS, ReportOptions(pivot=Pivot("epochs", "num_gpus", "wall_time_s")))
    assert len(pivot.blocks) == 1 and "| epochs \\ num_gpus | 1 | 2 |" in pivot.text
    with pytest.raises(UserInputError, match=r"--skill 'test_nope' is not a metric.*test_accuracy"):
        build_report("s", records(), PARAMS, ReportOptions(skill="test_nope"))
    with pytest.raises(UserInputError, match="--target nan is not a finite number"):
        build_report("s", records(), PARAMS, ReportOptions(target=math.nan))
    with pytest.raises(UserInputError, match="--format 'pdf'"):
        build_report("s", records(), PARAMS, ReportOptions(fmt="pdf"))
    assert "(no completed trials yet)" in build_report("s", [], PARAMS, ReportOptions()).text


class FakeTracker:  # unit-test stand-in; the real upload is tested against a real MLflow in test_cli_study
    def __init__(self, fail=False):
        self.fail, self.calls = fail, []

    def replace_report_run(self, experiment_id, parent_run_id, folder, files):
        if self.fail:
            raise TrackingError("MLflow (http://x) failed to upload the report: refused")
        self.calls.append((experiment_id, parent_run_id, folder, files))
        return "r2"


def test_log_report_replaces_the_report_run_and_survives_an_outage(tmp_path):
    tracker = FakeTracker()
    files = [tmp_path / "report.md"]
    assert "logged to MLflow run r2" in log_report(tracker, "1", "r1", tmp_path, files)
    assert tracker.calls == [("1", "r1", tmp_path, files)]
    line = log_report(FakeTracker(fail=True), "1", "r1", tmp_path, files)
    assert line.startswith("report not logged to MLflow") and "again" in line
    assert "no parent run" in log_report(tracker, "1", None, tmp_path, files)


def test_a_study_no_paper_layout_fits_says_so_and_points_to_the_pivot():
    recs = [
        {
            "trial": i,
            "learning_rate": lr,
            "batch_size": 128,
            "epochs": 5,
            "data_multiplier": 1,
            "num_gpus": 1,
            "augmentation": "pre",
            "wall_time_s": 10.0 + i,
            "test_accuracy": 0.9,
        }
        for i, lr in enumerate((1e-3, 1e-4))
    ]
    report = build_report("s", recs, ["learning_rate", *PARAMS], ReportOptions())
    assert not any(b.layout for b in report.blocks) and "No paper table layout fits this study" in report.text
    assert "--rows PARAM --cols PARAM --value METRIC" in report.text and "no completed trials" not in report.text
