"""GAN training: the `GAN` model, its optimizer, steps and the FID metric.

`GAN` is one `keras.Model` (generator, discriminator, frozen feature
extractor) trained with `fit` and scored by `val_fid`; its layers come from
`keras_nas.blocks` (`build_generator`, `build_discriminator`) and its search
space is `keras_nas.spaces.GanSearchSpace`. The names are also exported by
`keras_nas.blocks` (`GAN`, `GanOptimizer`) and `keras_nas.estimation` (the
FID names), where they were first.
"""

from keras_nas._lazy import lazy_module

_NAMES = {
    "GAN": ".model",
    "GanOptimizer": ".model",
    "FrechetDistance": ".fid",
    "frechet_distance": ".fid",
    "train_feature_extractor": ".fid",
}

__all__, __getattr__, __dir__ = lazy_module(__name__, _NAMES)
