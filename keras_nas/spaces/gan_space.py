"""The AutoGAN generator search space (Gong et al., ICCV 2019).

Searches the generator of a GAN, cell by cell, as in Gong, Chang, Jiang and
Wang, "AutoGAN: Neural Architecture Search for Generative Adversarial
Networks" (ICCV 2019), Section 3.1, scaled down for small images. The
hyperparameters are `num_cells`, `filters` and, for cell `i`:

- `cell{i}/upsample`: `"nearest"`, `"bilinear"` or `"deconv"`,
- `cell{i}/norm`: `"batch"`, `"instance"` or `"none"`,
- `cell{i}/conv`: `"post"` or `"pre"` activation conv blocks,
- `cell{i}/shortcut`: the in-cell shortcut on or off,
- `cell{i}/skip{j}` (j < i): the cross-cell skip from cell `j` on or off,

all active only while `num_cells > i`. The discriminator is fixed
(`keras_nas.blocks.gan.build_discriminator`) and trained with the
generator by the hinge loss; trials are scored by `val_fid`, the Fréchet
distance in the feature space of a local classifier (not Inception: the
values are not comparable to published FIDs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner

from keras_nas._validation import MAX_FILTERS
from keras_nas.blocks import gan
from keras_nas.gan.model import GAN, default_optimizer
from keras_nas.spaces import _common

__all__ = ["FID_OBJECTIVE", "GanSearchSpace", "gan_cells_from_hyperparameters"]

#: The objective of a GAN search: the validation Fréchet distance, minimized.
FID_OBJECTIVE = keras_tuner.Objective("val_fid", direction="min")


def gan_cells_from_hyperparameters(values: Any) -> list[dict[str, Any]]:
    """The `build_generator` cell specs of a trial's hyperparameters.

    Args:
        values: a dict or `keras_tuner.HyperParameters` with `num_cells` and
            the `cell{i}/...` values of the active cells.

    Returns:
        One dict of `GeneratorCell` arguments per cell.

    Example:

    >>> gan_cells_from_hyperparameters({
    ...     "num_cells": 1, "cell0/upsample": "nearest",
    ...     "cell0/norm": "batch", "cell0/conv": "post",
    ...     "cell0/shortcut": True})
    [{'upsample': 'nearest', 'norm': 'batch', 'conv_type': 'post', \
'shortcut': True, 'skips': []}]
    """
    values = _common.hp_values(values)
    if not _common.is_int(values.get("num_cells")):
        raise ValueError(
            "Expected `values` to hold an integer `num_cells`. "
            f"Received: values={values!r}"
        )
    cells = []
    for i in range(values["num_cells"]):
        keys = [f"cell{i}/{k}" for k in ("upsample", "norm", "conv")]
        keys += [f"cell{i}/shortcut"] + [f"cell{i}/skip{j}" for j in range(i)]
        missing = [k for k in keys if k not in values]
        if missing:
            raise ValueError(
                f"Expected `values` to hold {missing}. "
                f"Received: values={values!r}"
            )
        cells.append(
            {
                "upsample": values[f"cell{i}/upsample"],
                "norm": values[f"cell{i}/norm"],
                "conv_type": values[f"cell{i}/conv"],
                "shortcut": bool(values[f"cell{i}/shortcut"]),
                "skips": [bool(values[f"cell{i}/skip{j}"]) for j in range(i)],
            }
        )
    return cells


class GanSearchSpace(keras_tuner.HyperModel):
    """AutoGAN's generator search space as a `keras_tuner.HyperModel`.

    `build(hp)` returns a compiled `keras_nas.blocks.GAN`: the generator of
    `hp` (`build_generator`), the fixed discriminator (`build_discriminator`,
    spectral norm) and a copy of `feature_extractor` for the `fid` metric.
    Fit it on real images scaled to [-1, 1] (the generator ends in tanh),
    with the validation images as `validation_data`, and search with the
    objective `FID_OBJECTIVE` (`keras_tuner.Objective("val_fid", "min")`).

    Args:
        feature_extractor: a frozen model from images to feature vectors,
            e.g. `keras_nas.estimation.train_feature_extractor(x, y)`; the
            same one scores every trial.
        image_shape: `(height, width, channels)` of the images.
        num_cells: cell counts to search (an int fixes it); height and width
            must be divisible by `2 ** num_cells`. Defaults to 3, AutoGAN's
            depth (1x1 -> 8x8 for digits).
        filters: channel counts to search (`gf_dim`; an int fixes it).
        latent_dim: size of the latent vector.
        upsample_modes: upsampling choices (subset of
            `("nearest", "bilinear", "deconv")`).
        norms: normalization choices (subset of
            `("batch", "instance", "none")`).
        conv_types: conv block choices (subset of `("post", "pre")`).
        discriminator_filters: channels of the discriminator's first conv.
        discriminator_steps: discriminator steps per generator step
            (`n_critic`; AutoGAN's CIFAR-10 search uses 5).
        learning_rate: Adam learning rate of both networks (AutoGAN:
            2e-4 with betas (0.0, 0.9); larger helps short trials).
        seed: seed of the latent samples of every model.
        **kwargs: `name` and `tunable` of `keras_tuner.HyperModel`.

    Example:

    >>> from keras_nas.data import load_digits_arrays
    >>> from keras_nas.estimation import train_feature_extractor
    >>> x, y = load_digits_arrays()  # doctest: +SKIP
    >>> x = 2 * x - 1  # doctest: +SKIP
    >>> extractor = train_feature_extractor(x[:1400], y[:1400])
    ... # doctest: +SKIP
    >>> space = GanSearchSpace(extractor)  # doctest: +SKIP
    >>> tuner = keras_tuner.RandomSearch(space, objective=FID_OBJECTIVE,
    ...                                  max_trials=5)  # doctest: +SKIP
    >>> tuner.search(x[:1400], validation_data=x[1400:], epochs=5)
    ... # doctest: +SKIP
    """

    def __init__(
        self,
        feature_extractor: keras.Model,
        image_shape: Sequence[int] = (8, 8, 1),
        num_cells: int | Sequence[int] = 3,
        filters: int | Sequence[int] = (16, 32, 64),
        latent_dim: int = 32,
        upsample_modes: Sequence[str] = gan.UPSAMPLE_MODES,
        norms: Sequence[str] = gan.NORMS,
        conv_types: Sequence[str] = gan.CONV_TYPES,
        discriminator_filters: int = 32,
        discriminator_steps: int = 1,
        learning_rate: float = 1e-3,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_shape = _common.check_input_shape(image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(
                "Expected `image_shape` to be (height, width, channels). "
                f"Received: image_shape={image_shape!r}"
            )
        if not isinstance(feature_extractor, keras.Model):
            raise ValueError(
                "Expected `feature_extractor` to be a keras.Model from "
                "images to feature vectors. "
                f"Received: feature_extractor={feature_extractor!r}"
            )
        if tuple(feature_extractor.input_shape[1:]) != self.image_shape:
            raise ValueError(
                "Expected `feature_extractor` to take images of shape "
                f"{self.image_shape}. Received: a model with input shape "
                f"{feature_extractor.input_shape}"
            )
        self.feature_extractor = feature_extractor
        self.num_cells = _common.check_int_choices("num_cells", num_cells)
        most = gan.max_generator_cells(self.image_shape)
        if max(self.num_cells) > most:
            raise ValueError(
                f"Expected `num_cells` <= {most} for images of size "
                f"{self.image_shape[:2]} (each cell doubles the size). "
                f"Received: num_cells={num_cells!r}"
            )
        self.filters = _common.check_int_choices(
            "filters", filters, maximum=MAX_FILTERS
        )
        self.latent_dim = _common.check_positive_int("latent_dim", latent_dim)
        self.upsample_modes = _common.check_choices(
            "upsample_modes", upsample_modes, gan.UPSAMPLE_MODES
        )
        self.norms = _common.check_choices("norms", norms, gan.NORMS)
        self.conv_types = _common.check_choices(
            "conv_types", conv_types, gan.CONV_TYPES
        )
        self.discriminator_filters = _common.check_positive_int(
            "discriminator_filters", discriminator_filters
        )
        self.discriminator_steps = _common.check_positive_int(
            "discriminator_steps", discriminator_steps
        )
        _common.check_optimizer("adam", learning_rate)
        self.learning_rate = float(learning_rate)
        self.seed = seed

    def declare_hyperparameters(
        self, hp: keras_tuner.HyperParameters
    ) -> list[dict[str, Any]]:
        """Declares all hyperparameters of the space in `hp`.

        Returns:
            The `build_generator` cell specs of `hp`'s current values.
        """
        num_cells = _common.declare_int(hp, "num_cells", self.num_cells)
        _common.declare_int(hp, "filters", self.filters)
        choices = (
            ("upsample", self.upsample_modes),
            ("norm", self.norms),
            ("conv", self.conv_types),
        )
        for i in range(max(self.num_cells)):
            active = [n for n in self.num_cells if n > i]
            with hp.conditional_scope("num_cells", active):
                for key, values in choices:
                    hp.Choice(f"cell{i}/{key}", list(values))
                hp.Boolean(f"cell{i}/shortcut", default=True)
                for j in range(i):
                    hp.Boolean(f"cell{i}/skip{j}", default=False)
        values = {
            name: hp.get(name) for name in hp.values if hp.is_active(name)
        }
        values["num_cells"] = num_cells
        return gan_cells_from_hyperparameters(values)

    def _copy_extractor(self) -> keras.Model:
        extractor = keras.models.clone_model(self.feature_extractor)
        extractor.set_weights(self.feature_extractor.get_weights())
        extractor.trainable = False
        return extractor

    def build(self, hp: keras_tuner.HyperParameters) -> GAN:
        """Builds and compiles the GAN of `hp`'s generator."""
        cells = self.declare_hyperparameters(hp)
        generator = gan.build_generator(
            self.image_shape,
            cells,
            filters=hp.get("filters"),
            latent_dim=self.latent_dim,
        )
        discriminator = gan.build_discriminator(
            self.image_shape, self.discriminator_filters
        )
        model = GAN(
            generator,
            discriminator,
            self._copy_extractor(),
            seed=self.seed,
            discriminator_steps=self.discriminator_steps,
            name="gan",
        )
        model.compile(
            default_optimizer(self.learning_rate),
            default_optimizer(self.learning_rate),
        )
        return model
