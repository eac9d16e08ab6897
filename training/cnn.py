"""The compact CNN (DS-CNN style) sized for a Raspberry Pi: int8 <= 64 KB, <= 10 M MACs per window."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class CnnSettings:
    """Shape of the depthwise-separable CNN."""

    stem_filters: int = 32
    """Filters of the first full convolution."""
    block_filters: tuple[int, ...] = (48, 64, 64, 64)
    """Pointwise filters of each depthwise-separable block."""
    block_strides: tuple[int, ...] = (1, 2, 1, 2)
    """Stride (time and frequency) of each block's depthwise convolution."""
    dropout: float = 0.5
    """Dropout before the output layer."""


def build_cnn(window_frames: int, n_features: int, settings: CnnSettings | None = None) -> keras.Model:
    """Input (window_frames, n_features, 1) normalised MFCCs; output one logit (log-odds of female)."""
    s = settings or CnnSettings()
    inp = keras.Input((window_frames, n_features, 1), name="mfcc")
    x = layers.Conv2D(s.stem_filters, 3, strides=2, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for filters, stride in zip(s.block_filters, s.block_strides, strict=True):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    # Average over time only: where energy sits on the frequency axis (F0, formants) is the cue,
    # so frequency positions stay separate into the dense layer.
    x = layers.AveragePooling2D(pool_size=(x.shape[1], 1))(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(s.dropout)(x)
    out = layers.Dense(1, name="logit_female")(x)
    return keras.Model(inp, out, name="voicegender_dscnn")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass through the conv and dense layers."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            macs += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            cin = layer.input.shape[-1]
            macs += h * w * c * cin * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)
