"""A GAN as one `keras.Model`: `fit(x)` on real images, `val_fid` to search.

`GAN` holds a generator, a discriminator and (optionally) a frozen feature
extractor. `fit(x)` alternates one discriminator step and one generator step
per batch of real images with the hinge loss that AutoGAN uses (Gong et
al., ICCV 2019; from Lim & Ye, "Geometric GAN", 2017 and SNGAN):

    L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))
    L_G = -mean(D(G(z)))

`evaluate(x)` and `fit(..., validation_data=x_val)` feed the real images and
as many generated ones through the feature extractor into a
`FrechetDistance` metric named `fid`, so the validation logs hold `val_fid`
and `keras_tuner.Objective("val_fid", "min")` scores a trial. The gradient
code of each backend lives in `_steps_tensorflow.py` and `_steps_jax.py`,
which share the losses of `keras_nas.gan.losses`.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_nas._backend import backend_module
from keras_nas.gan.fid import FrechetDistance

__all__ = ["GAN", "GanOptimizer"]

_PACKAGE = "keras_nas"


def step_module():
    """Returns the module with the GAN steps of the current backend."""
    return backend_module("keras_nas.gan", "_steps", "GAN")


def default_optimizer(learning_rate: float = 2e-4) -> keras.optimizers.Adam:
    """AutoGAN's optimizer: Adam with betas (0.0, 0.9)."""
    return keras.optimizers.Adam(learning_rate, beta_1=0.0, beta_2=0.9)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GanOptimizer(keras.optimizers.Optimizer):
    """The generator's and the discriminator's optimizers as one optimizer.

    `GAN.compile` builds it on the two networks' variables; `variables`
    lists both optimizers' state (generator first), so Keras' JAX trainer
    threads it through the stateless steps. Updates are made by the GAN's
    train step through `generator_optimizer` and `discriminator_optimizer`;
    `iterations` and `learning_rate` are the generator's.

    Args:
        generator_optimizer: optimizer of the generator.
        discriminator_optimizer: optimizer of the discriminator.
        name: the optimizer's name.
    """

    def __init__(
        self,
        generator_optimizer: Any,
        discriminator_optimizer: Any,
        name: str = "gan_optimizer",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.generator_optimizer = keras.optimizers.get(generator_optimizer)
        self.discriminator_optimizer = keras.optimizers.get(
            discriminator_optimizer
        )

    def build_pair(self, generator_variables, discriminator_variables):
        """Builds the two optimizers on their networks' variables."""
        if self.built:
            return
        self.generator_optimizer.build(generator_variables)
        self.discriminator_optimizer.build(discriminator_variables)
        super().build(list(generator_variables) + list(discriminator_variables))

    def build(self, variables):
        if not self.built:
            raise ValueError(
                "GanOptimizer is built by GAN.compile (build_pair). "
                "Received: a direct call to build()"
            )

    @property
    def variables(self):
        return (
            self.generator_optimizer.variables
            + self.discriminator_optimizer.variables
        )

    @property
    def iterations(self):
        return self.generator_optimizer.iterations

    @property
    def learning_rate(self):
        return self.generator_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.generator_optimizer.learning_rate = value

    def split(self, values):
        """Splits a list aligned with `variables` into (generator, disc.)."""
        n = len(self.generator_optimizer.variables)
        return list(values[:n]), list(values[n:])

    def apply(self, grads, trainable_variables=None):
        raise ValueError(
            "GanOptimizer is applied by GAN.train_step through "
            "`generator_optimizer` and `discriminator_optimizer`. Received: "
            "a direct call to apply()"
        )

    def get_config(self):
        return {
            "name": self.name,
            "generator_optimizer": keras.optimizers.serialize(
                self.generator_optimizer
            ),
            "discriminator_optimizer": keras.optimizers.serialize(
                self.discriminator_optimizer
            ),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("generator_optimizer", "discriminator_optimizer"):
            config[key] = keras.optimizers.deserialize(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


def _check_model(name: str, value: Any, optional: bool = False):
    if value is None and optional:
        return None
    if not isinstance(value, keras.Model):
        raise ValueError(
            f"Expected `{name}` to be a keras.Model. Received: {name}={value!r}"
        )
    return value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GAN(keras.Model):
    """A generator and a discriminator trained together by `fit(x)`.

    Each training step takes `discriminator_steps` Adam steps of the
    discriminator on the hinge loss `mean(relu(1 - D(x))) +
    mean(relu(1 + D(G(z))))` (the same real batch `x`, a fresh latent batch
    `z ~ N(0, I)` each) and then one of the generator on `-mean(D(G(z)))`,
    as AutoGAN (Gong et al., ICCV 2019; its CIFAR-10 search uses 5
    discriminator steps, `n_critic`). Logs: `d_loss` (of the last
    discriminator step), `g_loss`. Labels given to `fit` are ignored.

    With a `feature_extractor`, `evaluate(x)` (and the validation of
    `fit(..., validation_data=x_val)`) generates one image per real image
    and logs `fid`, the `FrechetDistance` between the extractor's features
    of the real and generated images over the whole evaluation (the
    validation logs hold `val_fid`). The extractor is frozen.

    `GAN(z)` returns `generator(z)`; `generate(n)` returns `n` new images.

    Args:
        generator: a model from `(batch, latent_dim)` to images.
        discriminator: a model from images to `(batch, 1)` scores.
        feature_extractor: a model from images to `(batch, d)` features
            for the `fid` metric (see
            `keras_nas.estimation.train_feature_extractor`), or None.
        seed: seed of the latent samples.
        discriminator_steps: discriminator steps per generator step.
        **kwargs: `keras.Model` keyword arguments, such as `name`.

    Example:

    >>> gan = GAN(build_generator(), build_discriminator(), extractor)
    ... # doctest: +SKIP
    >>> gan.compile()  # Adam(2e-4, betas (0, 0.9)) for both networks
    ... # doctest: +SKIP
    >>> gan.fit(x, validation_data=x_val, epochs=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        feature_extractor: keras.Model | None = None,
        seed: int | None = None,
        discriminator_steps: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._steps = step_module()
        if (
            isinstance(discriminator_steps, bool)
            or not isinstance(discriminator_steps, int)
            or discriminator_steps < 1
        ):
            raise ValueError(
                "Expected `discriminator_steps` to be an integer >= 1. "
                f"Received: discriminator_steps={discriminator_steps!r}"
            )
        self.discriminator_steps = discriminator_steps
        self.generator = _check_model("generator", generator)
        self.discriminator = _check_model("discriminator", discriminator)
        self.feature_extractor = _check_model(
            "feature_extractor", feature_extractor, optional=True
        )
        self.latent_dim = int(self.generator.input_shape[-1])
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.fid_metric = None
        if self.feature_extractor is not None:
            self.feature_extractor.trainable = False
            self.fid_metric = FrechetDistance(
                int(self.feature_extractor.output_shape[-1]), name="fid"
            )
        self.build((None, self.latent_dim))

    def build(self, input_shape):
        self.built = True

    def call(self, inputs, training=None):
        return self.generator(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return self.generator.compute_output_shape(input_shape)

    @property
    def metrics(self):
        metrics = [self.d_loss_tracker, self.g_loss_tracker]
        return metrics + ([self.fid_metric] if self.fid_metric else [])

    def sample_latent(self, batch_size):
        """`(batch_size, latent_dim)` standard normal latent vectors."""
        return keras.random.normal(
            (batch_size, self.latent_dim), seed=self.seed_generator
        )

    def generate(self, num_images: int, batch_size: int = 256):
        """`num_images` generated images as a NumPy array."""
        z = keras.random.normal(
            (num_images, self.latent_dim), seed=self.seed_generator
        )
        return self.generator.predict(z, batch_size=batch_size, verbose=0)

    # ---------------------------------------------------------- training

    def compile(
        self,
        generator_optimizer: Any = None,
        discriminator_optimizer: Any = None,
        *,
        jit_compile: Any = "auto",
        steps_per_execution: int = 1,
        run_eagerly: bool = False,
        **kwargs: Any,
    ) -> None:
        """Configures the two optimizers (default: AutoGAN's Adam).

        Args:
            generator_optimizer: optimizer of the generator, or a
                `GanOptimizer` holding both. Defaults to Adam with learning
                rate 2e-4 and betas (0.0, 0.9).
            discriminator_optimizer: optimizer of the discriminator (same
                default).
            jit_compile: as in `keras.Model.compile`.
            steps_per_execution: as in `keras.Model.compile`.
            run_eagerly: as in `keras.Model.compile`.
            **kwargs: accepted for `compile_from_config`; `loss` and
                `metrics` are ignored (the GAN computes its own).
        """
        for key in ("loss", "metrics", "loss_weights", "weighted_metrics"):
            kwargs.pop(key, None)
        if kwargs:
            raise ValueError(
                "Unexpected arguments to GAN.compile. "
                f"Received: {sorted(kwargs)}"
            )
        if isinstance(generator_optimizer, GanOptimizer):
            pair = generator_optimizer
        else:
            pair = GanOptimizer(
                generator_optimizer or default_optimizer(),
                discriminator_optimizer or default_optimizer(),
            )
        super().compile(
            optimizer=pair,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
            auto_scale_loss=False,
        )
        pair.build_pair(
            self.generator.trainable_variables,
            self.discriminator.trainable_variables,
        )

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            "generator_optimizer": keras.optimizers.serialize(self.optimizer),
            "jit_compile": bool(self.jit_compile),
            "steps_per_execution": int(self.steps_per_execution),
        }

    def compile_from_config(self, config):
        self.compile(
            keras.optimizers.deserialize(config["generator_optimizer"]),
            jit_compile=config.get("jit_compile", "auto"),
            steps_per_execution=config.get("steps_per_execution", 1),
        )

    def train_step(self, *args):
        return self._steps.train_step(self, *args)

    def test_step(self, *args):
        if self.fid_metric is None:
            raise ValueError(
                "Expected a `feature_extractor` to evaluate a GAN (the `fid` "
                "metric). Received: feature_extractor=None"
            )
        return self._steps.test_step(self, *args)

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(
                self.discriminator
            ),
            feature_extractor=None
            if self.feature_extractor is None
            else keras.saving.serialize_keras_object(self.feature_extractor),
            seed=self.seed,
            discriminator_steps=self.discriminator_steps,
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("generator", "discriminator", "feature_extractor"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return cls(**config)
