"""The inverted-residual block of MobileNetV2, ProxylessNAS and MnasNet.

`MBConv` (Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018; the candidate block of Cai et al., "ProxylessNAS:
Direct Neural Architecture Search on Target Task and Hardware", ICLR 2019,
and of Tan et al., "MnasNet", CVPR 2019): a 1x1 convolution expanding the
channels by `expansion`, a `kernel_size` depthwise convolution (with the
block's stride), and a linear 1x1 projection to `filters` channels, each
followed by batch normalization (ReLU6 after the first two); the input is
added to the output when the stride is 1 and the channels do not change.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_nas._validation import MAX_FILTERS, check_positive_int
from keras_nas.blocks._op_numerics import _check_strides, _out_shape
from keras_nas.blocks.mobilenet_genotype import mbconv_op

__all__ = ["MBConv"]


@keras.saving.register_keras_serializable(package="keras_nas")
class MBConv(keras.layers.Layer):
    """Mobile inverted bottleneck: expand, depthwise conv, project (+ input).

    Args:
        filters: number of output channels.
        kernel_size: size of the depthwise kernel (3, 5 and 7 in
            ProxylessNAS and MnasNet).
        expansion: expansion ratio of the hidden channels (3 and 6 there);
            1 leaves out the expanding convolution.
        strides: stride of the depthwise convolution, 1 or 2.
        residual: add the input to the output when the shapes allow it
            (stride 1, `filters` input channels).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> block = MBConv(16, kernel_size=5, expansion=6, strides=2)
    >>> tuple(block(keras.ops.ones((2, 8, 8, 8))).shape)
    (2, 4, 4, 16)
    >>> block.op
    'mbconv_5x5_e6'
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        expansion: int = 6,
        strides: int = 1,
        residual: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters, 1, MAX_FILTERS)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.expansion = check_positive_int("expansion", expansion, 1, 64)
        self.strides = _check_strides(strides)
        if not isinstance(residual, bool):
            raise ValueError(
                "Expected `residual` to be a bool. "
                f"Received: residual={residual!r}"
            )
        self.residual = residual
        self.depthwise = keras.layers.DepthwiseConv2D(
            self.kernel_size,
            strides=self.strides,
            padding="same",
            use_bias=False,
            name="depthwise",
        )
        self.depthwise_bn = keras.layers.BatchNormalization(
            name="depthwise_bn"
        )
        self.project = keras.layers.Conv2D(
            self.filters, 1, use_bias=False, name="project"
        )
        self.project_bn = keras.layers.BatchNormalization(name="project_bn")
        self.expand = None
        self.expand_bn = None
        self.adds_input = False

    @property
    def op(self) -> str:
        """The block's op name in `MobileNetGenotype`, `mbconv_{k}x{k}_e{e}`."""
        return mbconv_op(self.kernel_size, self.expansion)

    def build(self, input_shape):
        shape = tuple(input_shape)
        channels = int(shape[-1])
        if self.expansion != 1:
            self.expand = keras.layers.Conv2D(
                channels * self.expansion, 1, use_bias=False, name="expand"
            )
            self.expand_bn = keras.layers.BatchNormalization(name="expand_bn")
            self.expand.build(shape)
            shape = self.expand.compute_output_shape(shape)
            self.expand_bn.build(shape)
        self.depthwise.build(shape)
        shape = self.depthwise.compute_output_shape(shape)
        self.depthwise_bn.build(shape)
        self.project.build(shape)
        self.project_bn.build(self.project.compute_output_shape(shape))
        self.adds_input = (
            self.residual and self.strides == 1 and channels == self.filters
        )

    def call(self, inputs, training=None):
        x = inputs
        if self.expand is not None:
            x = self.expand(x)
            x = ops.relu6(self.expand_bn(x, training=training))
        x = self.depthwise(x)
        x = ops.relu6(self.depthwise_bn(x, training=training))
        x = self.project_bn(self.project(x), training=training)
        if self.adds_input:
            x = ops.add(x, inputs)
        return x

    def compute_output_shape(self, input_shape):
        return _out_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            expansion=self.expansion,
            strides=self.strides,
            residual=self.residual,
        )
        return config
