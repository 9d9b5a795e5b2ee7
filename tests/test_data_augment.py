import math

import numpy as np
import pytest

from tornadostudy.data.augment import AugmentConfig, TransformParams, augment_numpy, sample_params, warp
from tornadostudy.errors import UserInputError


def _params(angle_deg=0.0, zoom=1.0, sx=0.0, sy=0.0, n=1):
    f = lambda v: np.full(n, v, dtype=np.float32)  # noqa: E731
    return TransformParams(f(math.radians(angle_deg)), f(zoom), f(sx), f(sy))


def _vortex(n=1, strength=1.0):
    rows, cols = np.meshgrid(np.arange(32.0), np.arange(32.0), indexing="ij")
    dx, dy = cols - 15.5, rows - 15.5
    x = np.zeros((n, 32, 32, 3), dtype=np.float32)
    x[..., 0] = np.exp(-(dx**2 + dy**2) / 40)
    x[..., 1] = -strength * dy  # solid-body counter-clockwise rotation: u = −ω·y, v = ω·x
    x[..., 2] = strength * dx
    return x


def _vorticity(x):
    return (np.gradient(x[..., 2], axis=2) - np.gradient(x[..., 1], axis=1))[:, 8:24, 8:24].mean(axis=(1, 2))


def test_identity_transform_returns_the_input():
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(warp(x, _params(n=3)), x, atol=1e-5)


def test_rotation_turns_image_and_wind_the_same_way():
    x = np.zeros((1, 32, 32, 3), dtype=np.float32)
    x[0, 15:17, 25:27, 0] = 1.0  # a blob east of the centre
    x[..., 1] = 10.0  # westerly wind
    out = warp(x, _params(angle_deg=90))
    row, col = np.unravel_index(out[0, ..., 0].argmax(), (32, 32))
    assert row > 20 and 13 <= col <= 18, "counter-clockwise: the eastern blob moves north (higher row)"
    np.testing.assert_allclose(out[0, 16, 16, 1:], [0.0, 10.0], atol=1e-4)  # westerly becomes southerly


def test_augmentation_never_mirrors_a_vortex():
    x = _vortex(64)
    out = augment_numpy(x, np.random.default_rng(1), AugmentConfig(max_rotation_deg=30, max_zoom=1.3))
    before, after = _vorticity(x), _vorticity(out)
    assert (after > 0).all(), "a mirrored storm would rotate the other way"
    np.testing.assert_allclose(after, before, rtol=0.35)
    assert not np.allclose(out, x)


def test_sampled_transforms_stay_within_config_and_preserve_orientation():
    cfg = AugmentConfig(max_rotation_deg=10, max_shift_px=2, max_zoom=1.2)
    p = sample_params(np.random.default_rng(0), 10_000, cfg)
    assert np.abs(np.degrees(p.angle)).max() <= 10 + 1e-4
    assert np.abs(p.shift_x).max() <= 2 and np.abs(p.shift_y).max() <= 2
    assert p.zoom.min() >= 1.0 and p.zoom.max() <= 1.2
    # Linear part zoom·R(θ): determinant zoom² > 0 for every draw, so never a reflection.
    det = (p.zoom * np.cos(p.angle)) ** 2 + (p.zoom * np.sin(p.angle)) ** 2
    assert (det > 0).all()


def test_standardised_input_gives_the_standardised_physical_result():
    rng = np.random.default_rng(2)
    raw = (_vortex(8) + rng.normal(size=(8, 32, 32, 3))).astype(np.float32)
    raw[..., 1] += 7.0
    raw[..., 2] -= 3.0
    mean = np.array([0.1, 7.0, -3.0], dtype=np.float32)
    scale = np.array([1.0, 2.0, 5.0], dtype=np.float32)
    params = sample_params(np.random.default_rng(3), 8, AugmentConfig())
    physical = (warp(raw, params) - mean) / scale
    scaled = warp((raw - mean) / scale, params, mean=mean, scale=scale)
    np.testing.assert_allclose(scaled, physical, atol=1e-4)


def test_deterministic_by_seed():
    x = _vortex(4)
    a = augment_numpy(x, np.random.default_rng(9), AugmentConfig())
    b = augment_numpy(x, np.random.default_rng(9), AugmentConfig())
    c = augment_numpy(x, np.random.default_rng(10), AugmentConfig())
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kwargs", [{"max_rotation_deg": 90}, {"max_shift_px": -1}, {"max_zoom": 0.5}])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(UserInputError):
        AugmentConfig(**kwargs)


@pytest.mark.tf
def test_tensorflow_warp_is_the_same_function():
    tf = pytest.importorskip("tensorflow")
    from tornadostudy.data.augment import _TensorFlowBackend, augment_tf

    x = (_vortex(16) + np.random.default_rng(4).normal(size=(16, 32, 32, 3))).astype(np.float32)
    params = sample_params(np.random.default_rng(5), 16, AugmentConfig())
    mean, scale = np.array([0, 1, 2], np.float32), np.array([1, 2, 3], np.float32)
    expected = warp(x, params, mean=mean, scale=scale)
    tf_params = TransformParams(*(tf.constant(v) for v in (params.angle, params.zoom, params.shift_x, params.shift_y)))
    got = warp(tf.constant(x), tf_params, mean=mean, scale=scale, backend=_TensorFlowBackend())
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)

    # Live use: inside a compiled (XLA) function on a batch of unknown size, still no mirroring.
    live = tf.function(
        lambda b: augment_tf(b, AugmentConfig()),
        jit_compile=True,
        input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32)],
    )
    out = live(tf.constant(_vortex(32))).numpy()
    assert out.shape == (32, 32, 32, 3) and (_vorticity(out) > 0).all()


def _bilinear_reference(images, src_x, src_y):
    """Plain per-pixel bilinear sampling with edge clamping, written independently of ``warp``."""
    n, h, w, _ = images.shape
    out = np.empty_like(images)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                x, y = src_x[b, i, j], src_y[b, i, j]
                x0, y0 = math.floor(x), math.floor(y)
                x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                fx, fy = x - x0, y - y0
                out[b, i, j] = (1 - fy) * ((1 - fx) * images[b, y0, x0] + fx * images[b, y0, x1]) + fy * (
                    (1 - fx) * images[b, y1, x0] + fx * images[b, y1, x1]
                )
    return out


def test_warp_samples_bilinearly_with_edge_clamping():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
    params = sample_params(rng, 4, AugmentConfig(max_rotation_deg=40, max_shift_px=8, max_zoom=1.5))
    # The source coordinates of the inverse map, as the module documents it.
    c = 15.5
    grid_y, grid_x = np.meshgrid(np.arange(32.0), np.arange(32.0), indexing="ij")
    cos, sin, zoom = (v[:, None, None] for v in (np.cos(params.angle), np.sin(params.angle), params.zoom))
    rel_x = grid_x[None] - c - params.shift_x[:, None, None]
    rel_y = grid_y[None] - c - params.shift_y[:, None, None]
    src_x = np.clip((cos * rel_x + sin * rel_y) / zoom + c, 0, 31)
    src_y = np.clip((cos * rel_y - sin * rel_x) / zoom + c, 0, 31)
    expected = _bilinear_reference(x, src_x, src_y)
    np.testing.assert_allclose(warp(x, params, vector_channels=None), expected, atol=1e-4)


def test_numpy_augmentation_in_chunks_is_the_same_as_in_one_piece(monkeypatch):
    from tornadostudy.data import augment

    x = np.random.default_rng(8).normal(size=(10, 32, 32, 3)).astype(np.float32)
    whole = augment_numpy(x, np.random.default_rng(9), AugmentConfig())
    monkeypatch.setattr(augment, "_NUMPY_CHUNK", 3)
    np.testing.assert_array_equal(augment_numpy(x, np.random.default_rng(9), AugmentConfig()), whole)


@pytest.mark.tf
def test_keras_ops_warp_is_the_same_function():
    from keras import ops

    from tornadostudy.data.augment import _KerasOpsBackend

    x = (_vortex(8) + np.random.default_rng(6).normal(size=(8, 32, 32, 3))).astype(np.float32)
    params = sample_params(np.random.default_rng(7), 8, AugmentConfig())
    mean, scale = np.array([0, 1, 2], np.float32), np.array([1, 2, 3], np.float32)
    expected = warp(x, params, mean=mean, scale=scale)
    tensors = TransformParams(
        *(ops.convert_to_tensor(v) for v in (params.angle, params.zoom, params.shift_x, params.shift_y))
    )
    got = warp(ops.convert_to_tensor(x), tensors, mean=mean, scale=scale, backend=_KerasOpsBackend())
    np.testing.assert_allclose(ops.convert_to_numpy(got), expected, atol=1e-4)
