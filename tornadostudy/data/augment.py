"""Storm-patch augmentation: small rotations, translations and crops, never reflections.

One warp, written once against a tiny array backend, serves both uses:

* ``augment_numpy`` — deterministic by seed, used by ``data prepare`` to write pre-augmented sets;
* ``augment_tf`` — the same math on TensorFlow tensors, used live inside the training graph.

Every transform is ``p_out = zoom · R(θ) · (p_in − c) + c + t`` with ``zoom ≥ 1`` (a centred crop
resized back to 32×32), so its determinant is ``zoom² > 0``: a mirrored storm (whose wind field would
turn the wrong way) can never be produced. The 10 m wind is a vector field, so its (U, V) components
are rotated by the same θ as the image. Rows run south→north and columns west→east (WRF's j, i), so a
positive θ is counter-clockwise on the map in both the image and the wind.

Pixels mapped from outside the patch take the nearest edge value; sampling is bilinear.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tornadostudy.errors import UserInputError

__all__ = ["AugmentConfig", "TransformParams", "augment_numpy", "augment_tf", "sample_params", "warp"]


@dataclass(frozen=True)
class AugmentConfig:
    max_rotation_deg: float = 15.0
    max_shift_px: float = 3.0
    # A crop keeps at least 1/max_zoom of the patch side, then is resized back to full size.
    max_zoom: float = 1.15
    # Channel indices of the (west-east, south-north) wind components, rotated as a vector.
    vector_channels: tuple[int, int] | None = (1, 2)

    def __post_init__(self) -> None:
        if not 0 <= self.max_rotation_deg <= 45:
            raise UserInputError(
                f"augmentation max_rotation_deg {self.max_rotation_deg!r} is out of range: use 0..45 degrees"
            )
        if not 0 <= self.max_shift_px <= 8:
            raise UserInputError(f"augmentation max_shift_px {self.max_shift_px!r} is out of range: use 0..8")
        if not 1 <= self.max_zoom <= 2:
            raise UserInputError(f"augmentation max_zoom {self.max_zoom!r} is out of range: use 1..2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TransformParams:
    """Per-patch transform parameters, each of shape ``(n,)``: radians, ≥1, pixels, pixels."""

    angle: Any
    zoom: Any
    shift_x: Any
    shift_y: Any


def sample_params(rng: np.random.Generator, n: int, config: AugmentConfig) -> TransformParams:
    """Draw ``n`` transforms uniformly within ``config`` (numpy, deterministic by ``rng``)."""
    max_angle = math.radians(config.max_rotation_deg)
    return TransformParams(
        angle=rng.uniform(-max_angle, max_angle, n).astype(np.float32),
        zoom=rng.uniform(1.0, config.max_zoom, n).astype(np.float32),
        shift_x=rng.uniform(-config.max_shift_px, config.max_shift_px, n).astype(np.float32),
        shift_y=rng.uniform(-config.max_shift_px, config.max_shift_px, n).astype(np.float32),
    )


class _NumpyBackend:
    xp = np

    @staticmethod
    def batch_index(images):
        return np.arange(images.shape[0], dtype=np.int32)

    @staticmethod
    def gather(flat, index):
        return flat[index]

    @staticmethod
    def to_int(values):
        return values.astype(np.int32)


class _TensorFlowBackend:
    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf
        self.xp = tf.experimental.numpy

    def batch_index(self, images):
        return self.tf.range(self.tf.shape(images)[0], dtype=self.tf.int32)

    def gather(self, flat, index):
        return self.tf.gather(flat, index)

    def to_int(self, values):
        return self.tf.cast(values, self.tf.int32)


class _KerasOpsBackend:
    """``keras.ops``: the same warp on whichever backend Keras runs (JAX, TensorFlow, PyTorch)."""

    def __init__(self) -> None:
        from keras import ops

        self.xp = ops

    def batch_index(self, images):
        return self.xp.arange(self.xp.shape(images)[0], dtype="int32")

    def gather(self, flat, index):
        return self.xp.take(flat, index, axis=0)

    def to_int(self, values):
        return self.xp.cast(values, "int32")


def warp(
    images,
    params: TransformParams,
    *,
    vector_channels: tuple[int, int] | None = (1, 2),
    mean=None,
    scale=None,
    backend=None,
):
    """Apply ``params`` to ``images`` (``(n, H, W, C)`` float32).

    ``mean``/``scale`` (per channel) say how the images were standardised; the wind components are
    rotated in physical units (``x·scale + mean``) and standardised again, because rotating
    standardised components with different means and scales would distort the vectors.
    """
    be = backend or _NumpyBackend()
    xp = be.xp
    height, width, channels = (int(d) for d in images.shape[1:])
    centre_x = (width - 1) / 2.0
    centre_y = (height - 1) / 2.0
    grid_y, grid_x = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")

    cos = xp.cos(params.angle)[:, None, None]
    sin = xp.sin(params.angle)[:, None, None]
    zoom = params.zoom[:, None, None]
    rel_x = (grid_x - centre_x)[None] - params.shift_x[:, None, None]
    rel_y = (grid_y - centre_y)[None] - params.shift_y[:, None, None]
    # Inverse map p_in = R(−θ)(p_out − c − t)/zoom + c, clamped to the patch (nearest-edge fill).
    src_x = xp.clip((cos * rel_x + sin * rel_y) / zoom + centre_x, 0.0, width - 1.0)
    src_y = xp.clip((cos * rel_y - sin * rel_x) / zoom + centre_y, 0.0, height - 1.0)

    x0f = xp.floor(src_x)
    y0f = xp.floor(src_y)
    wx = (src_x - x0f)[..., None]
    wy = (src_y - y0f)[..., None]
    x0 = be.to_int(x0f)
    y0 = be.to_int(y0f)

    # One gather per output pixel instead of four: each source pixel carries its right, lower and
    # lower-right neighbours (edge-clamped, as x1 = min(x0 + 1, W − 1) would pick) as extra channels.
    # On a CPU the gather's per-index cost dominates the warp, so this makes live augmentation cheaper.
    right = xp.concatenate([images[:, :, 1:], images[:, :, -1:]], axis=2)
    stacked = xp.concatenate([images, right], axis=-1)
    below = xp.concatenate([stacked[:, 1:], stacked[:, -1:]], axis=1)
    stacked = xp.concatenate([stacked, below], axis=-1)  # (y0,x0) (y0,x1) (y1,x0) (y1,x1) per channel block
    flat = xp.reshape(stacked, (-1, 4 * channels))
    base = (be.batch_index(images) * (height * width))[:, None, None]
    corners = xp.reshape(be.gather(flat, xp.reshape(base + y0 * width + x0, (-1,))), (-1, height, width, 4 * channels))
    c = channels
    top = corners[..., 0:c] * (1 - wx) + corners[..., c : 2 * c] * wx
    bottom = corners[..., 2 * c : 3 * c] * (1 - wx) + corners[..., 3 * c :] * wx
    out = top * (1 - wy) + bottom * wy
    if vector_channels is None:
        return out

    iu, iv = vector_channels
    m_u, m_v = (0.0, 0.0) if mean is None else (float(mean[iu]), float(mean[iv]))
    s_u, s_v = (1.0, 1.0) if scale is None else (float(scale[iu]), float(scale[iv]))
    u = out[..., iu] * s_u + m_u
    v = out[..., iv] * s_v + m_v
    cos_v, sin_v = cos[..., 0][..., None], sin[..., 0][..., None]
    rotated = {iu: ((cos_v * u - sin_v * v) - m_u) / s_u, iv: ((sin_v * u + cos_v * v) - m_v) / s_v}
    parts = [rotated[c][..., None] if c in rotated else out[..., c : c + 1] for c in range(channels)]
    return xp.concatenate(parts, axis=-1)


# The warp holds ~8 copies of its input at once (neighbour stack, gathered corners): bound that for
# callers that pass a whole data set.
_NUMPY_CHUNK = 4096


def augment_numpy(
    images: np.ndarray, rng: np.random.Generator, config: AugmentConfig, mean=None, scale=None
) -> np.ndarray:
    """Randomly transform a batch in numpy (used to write pre-augmented training sets)."""
    params = sample_params(rng, len(images), config)
    out = np.empty((len(images), *images.shape[1:]), dtype=np.float32)
    for start in range(0, len(images), _NUMPY_CHUNK):
        part = slice(start, start + _NUMPY_CHUNK)
        out[part] = warp(
            np.asarray(images[part], dtype=np.float32),
            TransformParams(params.angle[part], params.zoom[part], params.shift_x[part], params.shift_y[part]),
            vector_channels=config.vector_channels,
            mean=mean,
            scale=scale,
        )
    return out


def augment_tf(images, config: AugmentConfig, mean=None, scale=None, uniform=None):
    """Randomly transform a batch of TensorFlow tensors inside the graph (live augmentation).

    Same distribution and same warp as :func:`augment_numpy`. ``uniform(shape, low, high)`` draws
    the parameters (e.g. from a Keras ``SeedGenerator``, which works under XLA and
    ``MirroredStrategy``); by default ``tf.random.uniform``.
    """
    backend = _TensorFlowBackend()
    tf = backend.tf
    if uniform is None:

        def uniform(shape, low, high):
            return tf.random.uniform(shape, low, high, dtype=tf.float32)

    return _augment(tf.cast(images, tf.float32), tf.shape(images)[0], config, mean, scale, uniform, backend)


def augment_keras(images, config: AugmentConfig, uniform, mean=None, scale=None):
    """:func:`augment_tf` in ``keras.ops``, for Keras backends other than TensorFlow (JAX)."""
    backend = _KerasOpsBackend()
    ops = backend.xp
    return _augment(ops.cast(images, "float32"), ops.shape(images)[0], config, mean, scale, uniform, backend)


def _augment(images, n, config: AugmentConfig, mean, scale, uniform, backend):
    max_angle = math.radians(config.max_rotation_deg)
    params = TransformParams(
        angle=uniform((n,), -max_angle, max_angle),
        zoom=uniform((n,), 1.0, config.max_zoom),
        shift_x=uniform((n,), -config.max_shift_px, config.max_shift_px),
        shift_y=uniform((n,), -config.max_shift_px, config.max_shift_px),
    )
    return warp(images, params, vector_channels=config.vector_channels, mean=mean, scale=scale, backend=backend)
