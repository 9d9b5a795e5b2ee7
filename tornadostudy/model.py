"""The paper's CNN (Basalyga et al., Figure 1), and the live-augmentation layer.

32×32×3 → Conv2D(8, 5×5, same, ReLU) → AvgPool 2×2 → Conv2D(16, 5×5, same, ReLU) → AvgPool 2×2 →
Conv2D(32, 5×5, same, ReLU) → Flatten → Dense(1, sigmoid); Adam, binary cross-entropy.
Keras (and its backend) is imported only when a model is built.
"""

from __future__ import annotations

from tornadostudy.data.augment import AugmentConfig
from tornadostudy.data.schema import CHANNELS, PATCH_SIZE

__all__ = ["build_cnn", "storm_augmentation_layer"]


def storm_augmentation_layer(config: AugmentConfig, mean, scale, seed: int = 0):
    """A Keras layer applying :func:`~tornadostudy.data.augment.augment_tf` (or, on JAX,
    ``augment_keras``) while training only.

    It sits inside the model, so the transforms run in the compiled training step (on the GPU when
    there is one), not in Python input workers.
    """
    import keras

    from tornadostudy.data.augment import augment_keras, augment_tf

    # TensorFlow keeps its own ops (checked against numpy and measured); other backends use keras.ops.
    augment = augment_tf if keras.backend.backend() == "tensorflow" else augment_keras

    class StormAugmentation(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, inputs, training=None):
            if not training:
                return inputs

            def uniform(shape, low, high):
                return keras.random.uniform(shape, low, high, seed=self.seed_generator)

            return augment(inputs, config, mean=mean, scale=scale, uniform=uniform)

    return StormAugmentation(name="storm_augmentation")


def build_cnn(
    learning_rate: float = 1e-3, *, compile: bool = True, jit_compile: bool | str = "auto", augmentation=None
):
    """The paper's CNN; ``augmentation`` is an optional layer applied to the input while training."""
    import keras

    inputs = keras.Input((PATCH_SIZE, PATCH_SIZE, len(CHANNELS)), name="storm_patch")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = keras.layers.Conv2D(8, 5, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(16, 5, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(32, 5, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="tornado_probability")(x)
    model = keras.Model(inputs, outputs, name="tornado_cnn")
    if compile:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit_compile,
        )
    return model
