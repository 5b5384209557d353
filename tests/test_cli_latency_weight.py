"""`keras-nas search --latency-weight` (ProxylessNAS' latency term).

In the test process, as test_cli_checks.py does: the option is in the help,
bad values and other tuners are refused with exit status 2 and one line
before anything is built, and the weight reaches the Proxyless tuner (with
a latency table measured at its first trial).
"""

import types

import pytest

from keras_nas import _cli_tuners, cli
from keras_nas.spaces import MobileNetSearchSpace


def test_latency_weight_is_documented_checked_and_wired(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["search", "--help"])
    assert "--latency-weight W" in " ".join(capsys.readouterr().out.split())

    for bad in ("-1", "nan", "inf", "fast"):
        with pytest.raises(SystemExit) as e:
            cli.main(["search", "--latency-weight", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"expected a non-negative number, got {bad!r}" in err

    directory = tmp_path / "random"
    argv = ["search", "--tuner", "random", "--latency-weight", "0.1"]
    assert cli.main([*argv, "--directory", str(directory)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --latency-weight applies to --tuner proxyless; "
        "got --tuner random"
    ]
    assert not directory.exists()  # Refused before anything was written.

    args = cli.build_parser().parse_args(
        ["search", "--tuner", "proxyless", "--space", "mobilenet",
         "--latency-weight", "0.1", "--directory", str(tmp_path / "p")]
    )  # fmt: skip
    assert args.latency_weight == 0.1
    space = MobileNetSearchSpace((8, 8, 1), 10, width_multiplier=0.25)
    data = types.SimpleNamespace(is_arrays=True)
    tuner = _cli_tuners.make_tuner(args, space, data, report=print)
    assert tuner.supernet_config["latency_weight"] == 0.1
    assert tuner.latency_table == "measure"  # At the first trial.
    args.latency_weight = None  # No option: no latency term, no table.
    args.overwrite = True
    tuner = _cli_tuners.make_tuner(args, space, data, report=print)
    assert tuner.supernet_config["latency_weight"] == 0.0
    assert tuner.latency_table is None
