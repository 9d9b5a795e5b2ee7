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
    "name, cells", [("quickstart", 16), ("paper-6.1", 432), ("paper-6.2", 3120), ("tpe-example", 30)]
)
def test_shipped_studies_load(name, cells):
    spec = load_spec(STUDIES / f"{name}.toml")
    assert spec.name == name and spec.n_cells == cells
    assert StudySpec.from_json(spec.to_json()) == spec


def test_paper_grids_match_table_1():
    s61 = load_spec(STUDIES / "paper-6.1.toml")
    assert s61.search["epochs"] == (5, 10, 15) and s61.search["num_gpus"] == (1, 2, 3, 4)
    assert s61.search["batch_size"] == (128, 256, 512, 1024, 2048, 4096)
    assert s61.search["augmentation"] == ("pre", "live") and s61.constants["learning_rate"] == 1e-3
    s62 = load_spec(STUDIES / "paper-6.2.toml")
    assert s62.search["epochs"] == (5, 10, 15, *range(100, 1001, 100))
    assert s62.search["batch_size"] == tuple(2**k for k in range(7, 17))


def test_defaults_fill_the_constants():
    spec = parse_spec(_with())
    assert spec.constants == {"augmentation": "pre", "data_multiplier": 1, "epochs": 5, "learning_rate": 1e-3,
                              "num_gpus": 0}  # fmt: skip
    assert spec.objectives[0].metric == "test_auc" and spec.data.source == "synthetic"
    cells = spec.cells()
    assert [c["batch_size"] for c in cells] == [128, 256] and all(c["epochs"] == 5 for c in cells)


def test_repeats_add_a_repeat_dimension():
    spec = parse_spec(_with(study={"name": "t", "sampler": "grid", "repeats": 3}))
    assert spec.n_cells == 6 and spec.grid["repeat"] == [0, 1, 2]


def test_tpe_ranges():
    spec = parse_spec(_with(study={"name": "t", "sampler": "tpe", "n_trials": 5},
                            search={"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                                    "epochs": {"low": 2, "high": 9}}))  # fmt: skip
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
