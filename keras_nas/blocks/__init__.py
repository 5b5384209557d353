"""Cell blocks: candidate operations, genotypes and Keras cell layers.

Everything here can be used in any Keras model without a search.
"""

from keras_nas._lazy import lazy_module

_NAMES = {
    # Pure Python (no TensorFlow import).
    "Genotype": ".genotypes",
    "NasBench201Genotype": ".genotypes",
    "NB201_EDGES": ".genotypes",
    "DARTS": ".genotypes",
    "DARTS_V1": ".genotypes",
    "DARTS_V2": ".genotypes",
    "NASNET_A": ".genotypes",
    "AMOEBANET_A": ".genotypes",
    "DARTS_OPS": ".registry",
    "NB201_OPS": ".registry",
    "EXTRA_OPS": ".registry",
    "known_ops": ".registry",
    # Keras layers.
    "get_op": ".ops",
    "register_op": ".ops",
    "ReLUConvBN": ".ops",
    "SepConv": ".ops",
    "DilConv": ".ops",
    "FactorizedReduce": ".ops",
    "Zero": ".ops",
    "Identity": ".ops",
    "Pool": ".ops",
    "Cell": ".cells",
    "NormalCell": ".cells",
    "ReductionCell": ".cells",
    "NasBench201Cell": ".cells",
    "build_network": ".network",
    "build_nb201_network": ".network",
    "NetworkFromGenotype": ".network",
    "ResNetBasicBlock": ".network",
    "AuxiliaryHead": ".network",
    "DropPathSchedule": ".schedules",
    "MBConv": ".mbconv", "MobileNetGenotype": ".mobilenet_genotype",
    "GeneratorCell": ".gan", "build_generator": ".gan", "build_discriminator": ".gan",  # noqa: E501
    # Re-exported for compatibility; defined in `keras_nas.gan` (a layer
    # above: the lazy table loads it only when the name is used).
    "GAN": "keras_nas.gan.model",
    "GanOptimizer": "keras_nas.gan.model",
    "GCNConv": ".graph", "GraphSAGEConv": ".graph", "GINConv": ".graph", "GATConv": ".graph", "GraphReadout": ".graph", "NodeMask": ".graph", "GRAPH_CONVS": ".graph", "get_graph_conv": ".graph", "node_mask": ".graph",  # noqa: E501
}

__all__, __getattr__, __dir__ = lazy_module(__name__, _NAMES)
