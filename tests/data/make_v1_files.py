"""Makes the old-format ("ops_version 1") `.keras` files of this folder.

They were written by keras-nas at commit c6ba954 (before issue #18: Keras
'same' padding at stride 2, batch-norm epsilon 1e-3, no batch norm after the
pools of DARTS search edges) with

    PYTHONPATH=<checkout of c6ba954> python tests/data/make_v1_files.py DIR

and re-zipped with deflate (`.keras` files are zip archives). The tests load
them with the current code and check the saved outputs are reproduced.
"""

import os
import sys
import zipfile

import keras
import numpy as np

from keras_nas.blocks import DARTS_V2, build_network
from keras_nas.supernet.darts import DartsSupernet


def _deflate(path):
    with zipfile.ZipFile(path) as src:
        items = [(i.filename, src.read(i.filename)) for i in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in items:
            out.writestr(name, data)


def main(out):
    keras.utils.set_random_seed(0)
    net = build_network(DARTS_V2, (8, 8, 3), 3, filters=4, num_cells=2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    xt = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    for _ in range(3):  # moves the moving statistics of the BNs
        net(xt, training=True)
    net.save(os.path.join(out, "darts_v2_net_v1.keras"))
    sup = DartsSupernet(
        (8, 8, 3),
        3,
        filters=2,
        num_cells=1,
        num_nodes=2,
        seed=0,
        ops=("none", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3"),
    )
    sup(xt, training=True)
    sup.save(os.path.join(out, "darts_supernet_v1.keras"))
    for name in ("darts_v2_net_v1.keras", "darts_supernet_v1.keras"):
        _deflate(os.path.join(out, name))
    np.savez(
        os.path.join(out, "v1_outputs.npz"),
        x=x,
        net=keras.ops.convert_to_numpy(net(x, training=False)),
        supernet=keras.ops.convert_to_numpy(sup(x, training=False)),
    )


if __name__ == "__main__":
    main(sys.argv[1])
