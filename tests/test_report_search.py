"""The report of a TPE or random study: best trials, history, importances, slices; nothing averaged."""

from tornadostudy.report import ReportOptions, build_report

PARAMS = ["learning_rate", "batch_size", "epochs"]


def records():
    out = []
    for n in range(12):
        lr = 10 ** (-4 + 2 * n / 11)
        bs = (64, 128, 256)[n % 3]
        out.append(
            {
                "trial": n,
                "learning_rate": lr,
                "batch_size": bs,
                "epochs": 2 + n % 4,
                "wall_time_s": 30.0 + 3 * n,
                "test_auc": 0.6 + 0.02 * n - 0.01 * (n % 3),
                "test_accuracy": 0.93,
            }
        )
    return out


def test_a_tpe_report_has_best_trials_and_search_figures_and_no_grid_tables(tmp_path):
    opts = ReportOptions(
        fmt="md",
        out=tmp_path,
        skill="test_auc",
        objectives=(("test_auc", "maximize"),),
        sampler="tpe",
        importances={"learning_rate": 0.7, "batch_size": 0.2, "epochs": 0.1},
    )
    report = build_report("tpe", records(), PARAMS, opts)
    assert not any(b.layout for b in report.blocks), "no paper grid tables"
    best = report.blocks[1]
    assert best.title.startswith("Best 10 of 12 trials by test_auc (maximize)")
    assert list(best.table.index) == sorted(range(12), key=lambda n: -(0.6 + 0.02 * n - 0.01 * (n % 3)))[:10]
    assert all("±" not in str(v) for v in best.table.to_numpy().ravel()), "nothing averaged"
    names = {p.name for _, p in report.figures.made}
    assert {"optimisation_history.png", "param_importances.png", "slice.png"} <= names
    text = (tmp_path / "report.md").read_text()
    assert "![" in text and "(figures/optimisation_history.png)" in text, "the Markdown refers to its figures"


def test_a_grid_table_never_averages_across_a_parameter_that_varies():
    recs = [
        {"trial": i, "batch_size": bs, "epochs": ep, "learning_rate": lr, "wall_time_s": 10.0 * lr * 1000 + ep}
        | {"augmentation": "pre", "num_gpus": 1, "data_multiplier": 1, "test_accuracy": 0.9}
        for i, (bs, ep, lr) in enumerate((bs, ep, lr) for bs in (64, 128) for ep in (2, 4) for lr in (0.001, 0.01))
    ]
    report = build_report("g", recs, ["batch_size", "epochs", "learning_rate"], ReportOptions(metrics=("wall_time_s",)))
    tables = [b for b in report.blocks if b.layout == "Tables 8–9"]
    assert {b.where.get("learning_rate") for b in tables} == {0.001, 0.01}
    assert not any("(n=" in str(v) for b in tables for v in b.table.to_numpy().ravel())
