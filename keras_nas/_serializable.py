"""Makes every saved keras-nas object loadable after `import keras_nas`.

The layers, models, optimizers and metrics of keras-nas are registered with
`keras.saving.register_keras_serializable` where they are defined, but the
package imports its modules lazily (see `keras_nas._lazy`), so in a new
process a `.keras` file would name classes that no code has registered yet
("Could not locate class 'Cell'").

Importing every module that defines such a class on `import keras_nas` would
load Keras and TensorFlow there (0.1 s -> 6 s) and could not work at all when
Keras itself is being imported by one of those modules (a circular import).
Instead, once the `keras` module is imported (at once if it already is), each
name in `REGISTERED` is registered to a small placeholder class whose
`from_config` imports the defining module and hands over to the real class.
The real class's own decorator then replaces the placeholder, so the
placeholder is used at most once per name and process. The hook that waits
for `keras` is a `sys.meta_path` finder that only answers for `keras` and
removes itself once Keras is imported (`wrapt.register_post_import_hook`
does the same but imports `importlib.metadata`, 20-100 ms, while
`import keras_nas` takes ~3 ms).

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

PACKAGE = "keras_nas"

# Registered class name -> module defining it. `tests/test_load_saved.py`
# checks this table against the names the modules actually register.
REGISTERED = {
    "ReLUConvBN": "keras_nas.blocks.conv_ops",
    "SepConv": "keras_nas.blocks.conv_ops",
    "DilConv": "keras_nas.blocks.conv_ops",
    "FactorizedReduce": "keras_nas.blocks.conv_ops",
    "Zero": "keras_nas.blocks.pool_ops",
    "Identity": "keras_nas.blocks.pool_ops",
    "Pool": "keras_nas.blocks.pool_ops",
    "Cell": "keras_nas.blocks.cells",
    "NormalCell": "keras_nas.blocks.cells",
    "ReductionCell": "keras_nas.blocks.cells",
    "NasBench201Cell": "keras_nas.blocks.cells",
    "AuxiliaryHead": "keras_nas.blocks.network",
    "ResNetBasicBlock": "keras_nas.blocks.network",
    "MBConv": "keras_nas.blocks.mbconv",
    "ProxylessMixedBlock": "keras_nas.supernet.proxyless_block",
    "ProxylessSupernet": "keras_nas.supernet.proxyless",
    "GeneratorCell": "keras_nas.blocks.gan",
    "GAN": "keras_nas.gan.model",
    "GanOptimizer": "keras_nas.gan.model",
    "GCNConv": "keras_nas.blocks.graph",
    "GraphSAGEConv": "keras_nas.blocks.graph",
    "GINConv": "keras_nas.blocks.graph",
    "GATConv": "keras_nas.blocks.graph",
    "NodeMask": "keras_nas.blocks.graph",
    "GraphReadout": "keras_nas.blocks.graph",
    "FrechetDistance": "keras_nas.gan.fid",
    "MixedOp": "keras_nas.supernet.darts_cells",
    "SearchCell": "keras_nas.supernet.darts_cells",
    "Nb201SearchCell": "keras_nas.supernet.darts_nb201",
    "BilevelOptimizer": "keras_nas.supernet.bilevel",
    "DartsSupernet": "keras_nas.supernet.darts",
    "OneShotSupernet": "keras_nas.supernet.one_shot",
    "HyperCell": "keras_nas.supernet._hyper_nb201",
    "HyperDartsCell": "keras_nas.supernet.hypernetwork_cell",
    "HyperNetwork": "keras_nas.supernet.hypernetwork",
    "TorchSGD": "keras_nas.supernet.torch_style",
    "TorchAdam": "keras_nas.supernet.torch_style",
    "EpochCosineDecay": "keras_nas.supernet.torch_style",
}


def _placeholder(name: str, module: str) -> type:
    """A class that loads `module` and builds `module.name` from a config."""

    def from_config(cls, config: dict, *args: Any, **kwargs: Any) -> Any:
        real = getattr(importlib.import_module(module), name)
        return real.from_config(config, *args, **kwargs)

    def get_config(self) -> dict:  # required by register_keras_serializable
        raise NotImplementedError(f"Placeholder for {module}.{name}.")

    return type(
        name,
        (),
        {
            "__module__": __name__,
            "__doc__": f"Loads `{module}.{name}` when a file needs it.",
            "from_config": classmethod(from_config),
            "get_config": get_config,
        },
    )


def register_placeholders(keras: ModuleType) -> None:
    """Registers a placeholder for each name not registered yet."""
    saving = keras.saving
    for name, module in REGISTERED.items():
        if saving.get_registered_object(f"{PACKAGE}>{name}") is None:
            saving.register_keras_serializable(PACKAGE, name)(
                _placeholder(name, module)
            )


class _AfterKerasImport:
    """`sys.meta_path` finder: registers the placeholders after `keras`.

    It stays in `sys.meta_path` until an import of `keras` has run, since
    `importlib.util.find_spec("keras")` (TensorFlow calls it to check that
    Keras is installed) also asks the finders without importing.
    """

    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname != "keras" or getattr(self._busy, "on", False):
            return None
        self._busy.on = True  # the real finders locate keras
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self._busy.on = False
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            register_placeholders(module)

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Registers the placeholders once `keras` is imported (now if it is)."""
    keras = sys.modules.get("keras")
    if keras is not None:
        register_placeholders(keras)
    elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
