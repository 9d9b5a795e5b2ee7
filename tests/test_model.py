import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_the_papers_architecture():
    pytest.importorskip("tensorflow")
    from tornadostudy.model import build_cnn

    model = build_cnn()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer",
        "Conv2D",
        "AveragePooling2D",
        "Conv2D",
        "AveragePooling2D",
        "Conv2D",
        "Flatten",
        "Dense",
    ]
    assert [layer.filters for layer in model.layers if type(layer).__name__ == "Conv2D"] == [8, 16, 32]
    assert 15_000 < model.count_params() < 20_000
    assert model.output_shape == (None, 1)


@pytest.mark.slow
def test_the_cnn_learns_the_synthetic_storms(tmp_path):
    """Test AUC clearly above chance after a few epochs, but the task is not trivially separable."""
    pytest.importorskip("tensorflow")
    import keras
    from sklearn.metrics import roc_auc_score

    from tornadostudy.data.prepare import PrepareOptions, prepare
    from tornadostudy.data.prepared import PreparedData
    from tornadostudy.data.synth import synthesize
    from tornadostudy.model import build_cnn

    keras.utils.set_random_seed(0)
    synthesize(tmp_path / "raw", storms=3000, seed=2)
    prepare(PrepareOptions(source=tmp_path / "raw", out=tmp_path / "p", multipliers=(1,)))
    data = PreparedData.open(tmp_path / "p")
    (x, y), (xt, yt) = data.train(1), data.test()
    model = build_cnn()
    model.fit(np.asarray(x), y, epochs=6, batch_size=64, verbose=0)
    auc = roc_auc_score(yt, model.predict(np.asarray(xt), verbose=0).ravel())
    assert 0.65 < auc < 0.995
