"""Figures: which are drawn for which study, the Pareto front, the reference slice."""

import pandas as pd
import pytest

from tornadostudy.report import make_figures, pareto_front
from tornadostudy.report.plots import reference_slice

PARAMS = ["augmentation", "batch_size", "data_multiplier", "epochs", "num_gpus"]


def records(gpus=(1, 2), batches=(128, 512)):
    out, n = [], 0
    for aug in ("pre", "live"):
        for bs in batches:
            for k in (1, 2):
                for ep in (2, 4):
                    for g in gpus:
                        wall = ep * k * (1000 / bs + 1) / g
                        out.append(
                            {
                                "trial": n,
                                "run_id": f"run{n}",
                                "augmentation": aug,
                                "batch_size": bs,
                                "data_multiplier": k,
                                "epochs": ep,
                                "num_gpus": g,
                                "wall_time_s": wall,
                                "test_accuracy": 0.9 + 0.01 * ep + 0.001 * k,
                            }
                        )
                        n += 1
    return out


def test_pareto_front_keeps_only_points_nothing_beats_on_time_and_skill():
    points = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.6), (4.0, 0.9)]
    assert pareto_front(points) == [0, 2, 4]
    assert pareto_front(points, higher_is_better=False) == [0, 1]


def test_reference_slice_fixes_the_other_parameters_at_the_papers_values():
    df = pd.DataFrame(records())
    part, fixed = reference_slice(df, PARAMS, ("num_gpus",))
    assert fixed == {"augmentation": "pre", "batch_size": 128, "data_multiplier": 1, "epochs": 4}
    assert sorted(part["num_gpus"]) == [1, 2]


def test_every_figure_of_a_full_study(tmp_path):
    asked = []

    def read(run_id, key):
        asked.append((run_id, key))
        return [(1, 0.90), (2, 0.93), (3, 0.94)]

    figs = make_figures(records(), PARAMS, tmp_path, skill="test_accuracy", target=0.94, read_curve=read)
    names = sorted(p.name for _, p in figs.made)
    assert names == [
        "accuracy_vs_epochs.png",
        "curves_by_batch_size.png",
        "curves_by_num_gpus.png",
        "pareto.png",
        "speedup_vs_gpus.png",
        "wall_vs_batch.png",
    ]
    captions = dict((p.name, c) for c, p in figs.made)
    assert "paper Figure 6" in captions["curves_by_num_gpus.png"]
    assert "paper Figure 7" in captions["curves_by_batch_size.png"]
    assert "Figure 8" in captions["accuracy_vs_epochs.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for _, p in figs.made) and figs.skipped == []
    # Curves are read only for the runs a figure shows: one per GPU count and one per batch size.
    assert len(asked) == 4 and {k for _, k in asked} == {"accuracy"}


def test_figures_whose_dimension_does_not_vary_are_skipped_with_the_reason(tmp_path):
    def broken(run_id, key):
        raise ConnectionError("server away")

    figs = make_figures(records(gpus=(1,)), PARAMS, tmp_path, skill="test_accuracy", target=0.9, read_curve=broken)
    assert "speedup_vs_gpus: num_gpus does not vary in this study" in figs.skipped
    assert "curves_by_num_gpus: num_gpus does not vary in this study" in figs.skipped
    assert any(s.startswith("curves_by_batch_size: no 'accuracy' history") for s in figs.skipped)
    assert sorted(p.name for _, p in figs.made) == ["accuracy_vs_epochs.png", "pareto.png", "wall_vs_batch.png"]


@pytest.mark.parametrize("skill", ["test_accuracy", "test_far"])
def test_pareto_works_for_either_direction(tmp_path, skill):
    recs = [dict(r, test_far=1 - r["test_accuracy"]) for r in records()]
    figs = make_figures(recs, PARAMS, tmp_path, skill=skill, target=0.5)
    assert "pareto.png" in [p.name for _, p in figs.made]


def test_figure_8_draws_the_papers_table_8_beside_ours(tmp_path):
    recs = [
        {
            "trial": i,
            "augmentation": "pre",
            "batch_size": bs,
            "data_multiplier": 1,
            "epochs": ep,
            "num_gpus": 2,
            "wall_time_s": ep,
            "test_accuracy": 0.8 + ep / 10000,
        }
        for i, (bs, ep) in enumerate((bs, ep) for bs in (128, 256) for ep in (5, 10, 100))
    ]
    figs = make_figures(recs, PARAMS, tmp_path, skill="test_accuracy", target=0.8, paper=True)
    caption = next(c for c, p in figs.made if p.name == "accuracy_vs_epochs.png")
    assert caption.endswith("the paper's dashed")
