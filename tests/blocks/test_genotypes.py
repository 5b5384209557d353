import json
import subprocess
import sys

import pytest

from keras_nas.blocks import genotypes as G
from keras_nas.blocks import registry
from keras_nas.blocks.genotypes import Genotype, NasBench201Genotype

SMALL = dict(
    normal=[("sep_conv_3x3", 0), ("skip_connect", 1)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)],
)
NB201 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


def test_genotype_import_is_framework_free():
    code = (
        "import sys\n"
        "import keras_nas.blocks.genotypes as g\n"
        "import keras_nas\n"
        "from keras_nas.blocks import Genotype, DARTS_V2\n"
        "DARTS_V2.hash\n"
        "bad = [m for m in ('tensorflow', 'keras', 'jax') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('FREE')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FREE" in result.stdout


@pytest.mark.parametrize(
    "name", ["DARTS_V1", "DARTS_V2", "NASNET_A", "AMOEBANET_A"]
)
def test_published_constants(name):
    g = getattr(G, name)
    assert isinstance(g, Genotype)
    assert Genotype.from_json(g.to_json()) == g
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    for op, _ in g.normal + g.reduce:
        assert op in registry.known_ops()
    assert G.DARTS is G.DARTS_V2


def test_constant_shapes():
    assert G.DARTS_V2.num_nodes == 4 and G.DARTS_V2.num_reduce_nodes == 4
    assert G.DARTS_V2.normal_concat == (2, 3, 4, 5)
    assert G.NASNET_A.num_nodes == 5
    assert G.NASNET_A.reduce_concat == (4, 5, 6)
    assert G.AMOEBANET_A.normal_concat == (4, 5, 6)
    assert G.DARTS_V2.normal[7] == ("dil_conv_3x3", 2)


def test_defaults_and_accessors():
    g = Genotype(**SMALL)
    assert g.normal_concat == (2,) and g.reduce_concat == (2,)
    assert g.num_nodes == 1 and g.arity == 2
    assert g.cell("reduce") == (g.reduce, g.reduce_concat)
    assert g.nodes("normal") == [(("sep_conv_3x3", 0), ("skip_connect", 1))]
    assert "sep_conv_3x3(0)" in str(g)
    with pytest.raises(ValueError, match="Received: kind='x'"):
        g.cell("x")
    # Lists and tuples are normalized to tuples, so genotypes compare equal.
    lists = Genotype(
        normal=[["sep_conv_3x3", 0], ["skip_connect", 1]],
        reduce=[["max_pool_3x3", 0], ["max_pool_3x3", 1]],
    )
    assert lists == g and hash(lists) == hash(g)


def test_json_round_trip():
    g = Genotype(**SMALL, normal_concat=[2], arity=2)
    text = g.to_json()
    assert json.loads(text)["normal"] == [
        ["sep_conv_3x3", 0],
        ["skip_connect", 1],
    ]
    assert Genotype.from_json(text) == g
    with pytest.raises(ValueError, match="Received: text="):
        Genotype.from_json("{not json")
    with pytest.raises(ValueError, match="Received: data keys="):
        Genotype.from_dict({"normal": []})
    with pytest.raises(ValueError, match="Received: data="):
        Genotype.from_dict([1, 2])


def test_canonical_hash_ignores_input_order():
    a = Genotype(**SMALL)
    b = Genotype(
        normal=[("skip_connect", 1), ("sep_conv_3x3", 0)],
        reduce=SMALL["reduce"],
    )
    assert a != b
    assert a.canonical() == b.canonical()
    assert a.hash == b.hash and len(a.hash) == 64
    c = Genotype(
        normal=[("sep_conv_5x5", 0), ("skip_connect", 1)],
        reduce=SMALL["reduce"],
    )
    assert c.hash != a.hash
    assert G.DARTS_V1.hash != G.DARTS_V2.hash


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(normal=[("conv_9x9", 0), ("skip_connect", 1)]), "Unknown op"),
        (dict(normal=[("sep_conv_3x3", 2), ("skip_connect", 1)]), "range"),
        (dict(normal=[("sep_conv_3x3", -1), ("skip_connect", 1)]), "range"),
        (dict(normal=[("sep_conv_3x3", 0)]), "multiple of 2"),
        (dict(normal=[]), "at least one node"),
        (dict(normal="sep_conv_3x3"), "sequence of"),
        (dict(normal=[("sep_conv_3x3", 0, 1), ("skip", 1)]), "pair"),
        (dict(normal=[(3, 0), ("skip_connect", 1)]), "string"),
        (dict(normal=[("sep_conv_3x3", 0.0), ("skip_connect", 1)]), "integer"),
        (dict(normal_concat=(2, 2)), "distinct"),
        (dict(normal_concat=(5,)), "normal_concat"),
        (dict(normal_concat=()), "at least one"),
        (dict(arity=0), "arity"),
        (dict(arity=True), "arity"),
    ],
)
def test_validation_errors(kwargs, match):
    args = {**SMALL, **kwargs}
    with pytest.raises(ValueError, match=match):
        Genotype(**args)


def test_arity_other_than_two():
    g = Genotype(
        normal=[("skip_connect", 0), ("skip_connect", 1), ("none", 0)],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("none", 1)],
        arity=3,
    )
    assert g.num_nodes == 1
    assert Genotype.from_json(g.to_json()) == g


def test_nb201_genotype():
    g = NasBench201Genotype.from_string(NB201)
    assert g.ops[2] == "avg_pool_3x3"
    assert g.to_string() == NB201
    assert str(g) == NB201
    assert g.edges[0] == (1, 0, "nor_conv_3x3")
    assert [(i, j) for i, j, _ in g.edges] == list(G.NB201_EDGES)
    assert NasBench201Genotype.from_json(g.to_json()) == g
    assert NasBench201Genotype.from_dict(g.to_dict()) == g
    assert NasBench201Genotype(list(g.ops)) == g
    assert g.hash == NasBench201Genotype(g.ops).hash
    other = NasBench201Genotype(("none",) * 6)
    assert other.hash != g.hash


@pytest.mark.parametrize(
    "text",
    [
        "|nor_conv_3x3~0|",
        "|nor_conv_3x3~1|+|a~0|b~1|+|a~0|b~1|c~2|",
        "|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|",
        "nonsense",
        3,
    ],
)
def test_nb201_bad_strings(text):
    with pytest.raises(ValueError, match="Received: text="):
        NasBench201Genotype.from_string(text)


def test_nb201_bad_ops():
    with pytest.raises(ValueError, match="Received: ops="):
        NasBench201Genotype(("none",) * 5)
    with pytest.raises(ValueError, match="Unknown op"):
        NasBench201Genotype(("none",) * 5 + ("conv_9x9",))
    with pytest.raises(ValueError, match="Received: ops="):
        NasBench201Genotype("none")
    with pytest.raises(ValueError, match="Received: data="):
        NasBench201Genotype.from_dict({"ops": [], "x": 1})


PAIRS = [["skip_connect", 0], ["skip_connect", 1]]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"normal": 5, "reduce": PAIRS}, "normal=5"),
        ({"normal": [5, 6], "reduce": PAIRS}, r"normal\[0\]=5"),
        ({"normal": PAIRS, "reduce": 7}, "reduce=7"),
        ({"normal": PAIRS, "reduce": PAIRS, "arity": "2"}, "arity='2'"),
        (
            {"normal": PAIRS, "reduce": PAIRS, "reduce_concat": 3},
            "reduce_concat=3",
        ),
        ({"normal": PAIRS, 1: 2}, r"data keys=\['1', 'normal'\]"),
    ],
)
def test_from_dict_wrong_types_name_the_field(data, field):
    with pytest.raises(ValueError, match=f"Received: {field}"):
        Genotype.from_dict(data)


def test_nb201_from_dict_wrong_type_names_the_field():
    with pytest.raises(ValueError, match="Received: ops=5"):
        NasBench201Genotype.from_dict({"ops": 5})
    with pytest.raises(ValueError, match=r"Received: ops=\(3, "):
        NasBench201Genotype.from_dict({"ops": [3] * 6})


def test_deeply_nested_json_is_a_value_error_with_a_short_message():
    deep = "[" * 100_000 + "]" * 100_000
    for cls, text in [
        (Genotype, deep),
        (NasBench201Genotype, '{"ops": ' + deep + "}"),
    ]:
        with pytest.raises(ValueError, match="nested too deeply") as info:
            cls.from_json(text)
        assert len(str(info.value)) < 500
    # Nested, but within the JSON parser's limit: the field is named.
    nested = json.loads("[" * 500 + "]" * 500)
    with pytest.raises(ValueError, match=r"Received: normal\[0\]=\[\[") as e:
        Genotype.from_dict({"normal": nested, "reduce": PAIRS})
    assert len(str(e.value)) < 500
