"""Names of the metrics keras-nas adds to a trial's logs.

Shared by the estimators that add them (`keras_nas.estimation`) and the
TensorBoard views that group them (`keras_nas.tensorboard`), which sit in
different layers of the package; this module imports nothing.
"""

__all__ = ["HARDWARE_METRICS"]

#: Metric names `keras_nas.estimation.HardwareAware` can add (all to be
#: minimized); TensorBoard shows them under `hardware/`.
HARDWARE_METRICS = (
    "params", "trainable_params", "macs", "flops", "latency",
    "predicted_latency",
)  # fmt: skip
