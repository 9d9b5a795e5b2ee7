"""The paper's CNN (Basalyga et al., Figure 1).

32×32×3 → Conv2D(8, 5×5, same, ReLU) → AvgPool 2×2 → Conv2D(16, 5×5, same, ReLU) → AvgPool 2×2 →
Conv2D(32, 5×5, same, ReLU) → Flatten → Dense(1, sigmoid); Adam, binary cross-entropy.
TensorFlow is imported only when a model is built.
"""

from __future__ import annotations

from tornadostudy.data.schema import CHANNELS, PATCH_SIZE

__all__ = ["build_cnn"]


def build_cnn(learning_rate: float = 1e-3, *, compile: bool = True, jit_compile: bool | str = "auto"):
    import keras

    inputs = keras.Input((PATCH_SIZE, PATCH_SIZE, len(CHANNELS)), name="storm_patch")
    x = keras.layers.Conv2D(8, 5, padding="same", activation="relu")(inputs)
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
