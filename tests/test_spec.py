import textwrap
from pathlib import Path

import pytest

from tornadostudy.errors import SpecError
from tornadostudy.spec import Range, StudySpec, load_spec, parse_spec

STUDIES = Path(__file__).resolve().parents[1] / "studies"

BASE = {
    "study": {"name": "t", "sampler": "grid"},
    "trainer": {"kind": "simulate"},
    "search": {"batch_size": [128, 256]},
}


def _with(**sections):
    raw = {k: dict(v) for k, v in BASE.items()}
    for key, value in sections.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize(
    "name, cells",
    [
        ("quickstart", 16),
        ("paper-6.1", 279),
        ("paper-6.2", 130),
        ("extension-6.1-full-grid", 810),
        ("extension-6.2-wide", 3120),
        ("tpe-example", 30),
    ],
)
def test_shipped_studies_load(name, cells):
    spec = load_spec(STUDIES / f"{name}.toml")
    assert spec.name == name and spec.n_cells == cells
    assert StudySpec.from_json(spec.to_json()) == spec
    if spec.sampler == "grid":
        assert len(spec.cells()) == cells


def _configuration(params) -> tuple:
    return tuple(params[k] for k in ("augmentation", "epochs", "batch_size", "data_multiplier", "num_gpus"))


@pytest.mark.parametrize(("name", "tables"), [("paper-6.1", (2, 3, 4, 5, 6, 7)), ("paper-6.2", (8, 9))])
def test_the_paper_specs_hold_exactly_the_configurations_the_paper_ran(name, tables):
    """Every configuration of the paper's tables is a cell, and every cell is in one of its tables."""
    from tornadostudy.paper import paper_rows

    spec = load_spec(STUDIES / f"{name}.toml")
    ran = {_configuration(r.__dict__) for r in paper_rows() if r.table in tables}
    cells = {_configuration(c) for c in spec.cells()}
    assert cells == ran
    assert spec.data.balance == "paper" and {c["learning_rate"] for c in spec.cells()} == {1e-3}


def test_a_grid_of_several_parts_is_the_union_of_their_cells_with_gridsampler_ids():
    raw = _with(search=None)
    raw["search"] = [{"batch_size": [128, 256], "epochs": [5]}, {"batch_size": [256, 512], "epochs": [5, 10]}]
    spec = parse_spec(raw)
    cells = spec.grid_cells()
    assert [(c["batch_size"], c["epochs"]) for _, c in cells] == [(128, 5), (256, 5), (256, 10), (512, 5), (512, 10)]
    # ids index the product of the parameters' values (sorted names: batch_size, epochs) as GridSampler's do
    assert [i for i, _ in cells] == [0, 2, 3, 4, 5]
    assert spec.search == {"batch_size": (128, 256, 512), "epochs": (5, 10)} and spec.n_cells == 5
    assert StudySpec.from_json(spec.to_json()) == spec
    raw["search"][1] = {"batch_size": [512]}
    with pytest.raises(SpecError, match=r"search\[1\]\.epochs: every \[\[search\]\] table must list the same"):
        parse_spec(raw)


def test_defaults_fill_the_constants():
    spec = parse_spec(_with())
    assert spec.constants == {
        "augmentation": "pre",
        "data_multiplier": 1,
        "epochs": 5,
        "learning_rate": 1e-3,
        "num_gpus": 0,
    }
    assert spec.objectives[0].metric == "test_auc" and spec.data.source == "synthetic"
    cells = spec.cells()
    assert [c["batch_size"] for c in cells] == [128, 256] and all(c["epochs"] == 5 for c in cells)


def test_repeats_add_a_repeat_dimension():
    spec = parse_spec(_with(study={"name": "t", "sampler": "grid", "repeats": 3}))
    assert spec.n_cells == 6 and spec.grid["repeat"] == [0, 1, 2]


def test_tpe_ranges():
    spec = parse_spec(
        _with(
            study={"name": "t", "sampler": "tpe", "n_trials": 5},
            search={"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "epochs": {"low": 2, "high": 9}},
        )
    )
    assert spec.search["learning_rate"] == Range(1e-4, 1e-2, True, None)
    assert spec.search["epochs"].is_int and not spec.search["learning_rate"].is_int
    assert spec.n_cells == 5


@pytest.mark.parametrize(
    "sections, needle",
    [
        ({"bogus": {}}, "bogus: unknown key; valid keys: study, objective, data"),
        ({"study": {"name": "t", "smapler": "grid"}}, "study.smapler: unknown key; valid keys: name"),
        ({"search": {"batchsize": [1]}}, "search.batchsize: unknown key; valid keys: epochs, batch_size"),
        ({"study": {"sampler": "grid"}}, "study.name: missing"),
        ({"study": {"name": "t", "sampler": "cmaes"}}, "study.sampler: 'cmaes' is not valid"),
        ({"search": {"batch_size": []}}, "search.batch_size: empty list"),
        ({"search": {"batch_size": [128, 0]}}, "search.batch_size: 0 is not valid"),
        ({"search": {"batch_size": [128, -5]}}, "search.batch_size: -5 is not valid"),
        ({"search": {"batch_size": ["big"]}}, "search.batch_size: 'big' is not a whole number"),
        ({"search": {"batch_size": [128, 128]}}, "lists a value twice"),
        ({"search": {"augmentation": ["pre", "mirror"]}}, "search.augmentation: 'mirror' is not valid"),
        ({"search": {"epochs": {"low": 1, "high": 5}}}, "a grid study needs a list"),
        ({"search": {}}, "search: a grid study needs at least one searched parameter"),
        ({"training": {"batch_size": 128}}, "search.batch_size: also set in [training]"),
        ({"training": {"learning_rate": -1.0}}, "training.learning_rate: -1.0 is not valid"),
        ({"training": {"epochs": 2.5}}, "training.epochs: 2.5 is not a whole number"),
        ({"training": {"num_gpus": True}}, "training.num_gpus: True is not a whole number"),
        ({"trainer": {"kind": "pytorch"}}, "trainer.kind: 'pytorch' is not valid"),
        ({"trainer": {"kind": "keras", "time_scale": 1.0}}, 'only apply to kind = "simulate"'),
        ({"objective": [{"metric": "accuracy"}]}, "objective[0].metric: 'accuracy' is not valid"),
        ({"objective": [{"metric": "test_auc", "direction": "up"}]}, "objective[0].direction"),
        ({"data": {"source": "synthetic", "storms": 3}}, "data.storms: 3 is too few"),
        ({"data": {"balance": "smote"}}, "data.balance"),
        ({"study": {"name": "t", "sampler": "grid", "n_trials": 5}}, "study.n_trials: a grid study runs every cell"),
    ],
)
def test_bad_specs_name_the_key(sections, needle):
    with pytest.raises(SpecError) as info:
        parse_spec(_with(**sections), "s.toml")
    message = str(info.value)
    assert message.startswith("s.toml: ") and needle in message and "\n" not in message


@pytest.mark.parametrize(
    "study, search, needle",
    [
        ({"name": "t", "sampler": "tpe"}, {"epochs": [1, 2]}, "study.n_trials: missing"),
        ({"name": "t", "sampler": "tpe", "n_trials": 3}, {"epochs": {"low": 9, "high": 2}}, "low 9 > high 2"),
        (
            {"name": "t", "sampler": "random", "n_trials": 3},
            {"learning_rate": {"low": 0.0001}},
            "a range needs low and high",
        ),
        ({"name": "t", "sampler": "tpe", "n_trials": 3}, {"num_gpus": [1, 2]}, "cannot search GPU counts"),
        (
            {"name": "t", "sampler": "tpe", "n_trials": 3},
            {"augmentation": {"low": 1, "high": 2}},
            "takes a list of choices",
        ),
    ],
)
def test_bad_tpe_specs(study, search, needle):
    with pytest.raises(SpecError, match=needle):
        parse_spec(_with(study=study, search=search))


def test_file_errors(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 'x'")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)


def test_fingerprint_tracks_content_not_formatting(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(
        textwrap.dedent("""
        [study]
        name = "t"
        [search]
        batch_size = [128, 256]
    """)
    )
    b.write_text('[search]\nbatch_size = [128,256]\n\n[study]\nname="t"  # same study\n')
    assert load_spec(a).fingerprint == load_spec(b).fingerprint
    b.write_text('[study]\nname="t"\n[search]\nbatch_size = [128, 512]\n')
    assert load_spec(a).fingerprint != load_spec(b).fingerprint


def test_data_takes_the_balance_and_the_label_rule():
    spec = parse_spec(
        _with(data={"balance": "paper", "label_statistic": "mean", "label_threshold": 0.008, "label_comparison": ">="})
    )
    assert spec.data.balance == "paper"
    assert spec.data.label_fields() == {
        "variable": "RVORT1_MAX_future",
        "statistic": "mean",
        "region": "mask",
        "threshold": 0.008,
        "comparison": ">=",
    }
    with pytest.raises(SpecError, match=r"data.balance: 'halves' is not valid: use one of none, oversample, paper"):
        parse_spec(_with(data={"balance": "halves"}))
    with pytest.raises(SpecError, match=r"data.label_region: 'disk' is not valid: use one of mask, patch"):
        parse_spec(_with(data={"label_region": "disk"}))


def test_live_cpu_and_the_simulator_profile_are_spec_values():
    spec = parse_spec(
        _with(
            search={"augmentation": ["pre", "live", "live_cpu"]},
            trainer={"kind": "simulate", "profile": "paper", "train_samples": 138963},
        )
    )
    assert spec.trainer.profile == "paper" and spec.trainer.train_samples == 138963
    with pytest.raises(SpecError, match=r'trainer: .*only apply to kind = "simulate"'):
        parse_spec(_with(trainer={"kind": "keras", "profile": "paper"}))
    with pytest.raises(SpecError, match=r"trainer\.profile: 'fast' is not valid: use one of quick, paper"):
        parse_spec(_with(trainer={"kind": "simulate", "profile": "fast"}))
