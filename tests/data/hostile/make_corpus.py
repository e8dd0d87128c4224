"""Regenerate the hostile model-file corpus: ``python tests/data/hostile/make_corpus.py``.

Each file is the small valid model ``BASE`` (hand-written here, independent of
graphdiff's writer) with one attack applied. ``expected.json`` maps each file
name to the error code the loader must refuse it with, a text the message must
contain (the culprit), optionally the location (JSON pointer) and the limits to
load it under. ``00_valid_base.json`` must load. The files are committed; the
tests read them and never run this script.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import struct
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def f64(*xs: float) -> str:
    return base64.b64encode(struct.pack(f"<{len(xs)}d", *xs)).decode()


def f32(*xs: float) -> str:
    return base64.b64encode(struct.pack(f"<{len(xs)}f", *xs)).decode()


def tensor(dtype: str, shape: list[Any], data: str) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data": data}


# nodes: 0 t, 1 x1, 2 x2, 3 W, 4 h, 5 E; edges: 0 t->E, 1 x1->h, 2 x2->h, 3 h->E
BASE: dict[str, Any] = {
    "format": "graphdiff",
    "format_version": "1.0",
    "loss": "E",
    "graph": {
        "directed": True,
        "multigraph": False,
        "nodes": [
            {"id": "t", "attrs": {"op": "input"}},
            {"id": "x1", "attrs": {"op": "input", "pos": [0, 1]}},
            {"id": "x2", "attrs": {"op": "input"}},
            {"id": "W", "attrs": {"op": "param", "shape": [2]},
             "arrays": {"value": tensor("float32", [2], f32(0.5, -1.0))}},
            {"id": "h", "attrs": {"op": "neuron", "activation": "tanh", "bias": 0.125}},
            {"id": "E", "attrs": {"op": "hinge"}},
        ],
        "edges": [
            {"source": "t", "target": "E", "attrs": {"port": 1}},
            {"source": "x1", "target": "h", "attrs": {"param": "u", "weight": 0.5}},
            {"source": "x2", "target": "h", "attrs": {"param": "v"}},
            {"source": "h", "target": "E", "attrs": {"port": 0}},
        ],
    },
    "params": {
        "W": tensor("float32", [2], f32(1.0, 2.0)),
        "h.bias": tensor("float64", [], f64(0.125)),
        "u": tensor("float64", [], f64(0.5)),
        "v": tensor("float64", [], f64(-0.25)),
    },
    "ops": {},
}

CORPUS: dict[str, dict[str, Any]] = {}
FILES: dict[str, bytes] = {}


def dump(doc: Any) -> str:
    return json.dumps(doc, indent=1)


def add(name: str, data: str | bytes, code: str | None, culprit: str = "",
        location: str | None = None, limits: dict[str, int] | None = None) -> None:
    FILES[name] = data.encode() if isinstance(data, str) else data
    entry: dict[str, Any] = {"code": code, "culprit": culprit}
    if location is not None:
        entry["location"] = location
    if limits:
        entry["limits"] = limits
    CORPUS[name] = entry


def edit(fn: Callable[[dict[str, Any]], Any]) -> str:
    doc = copy.deepcopy(BASE)
    fn(doc)
    return dump(doc)


def node(doc: dict[str, Any], i: int) -> dict[str, Any]:
    return doc["graph"]["nodes"][i]  # type: ignore[no-any-return]


def set_op(i: int, attr: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: node(d, i)["attrs"].__setitem__(attr, value)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def raw_pos(text: str) -> str:
    """The base file with node x1's ``pos`` (at nesting depth 6) replaced by raw text."""
    return replace_once(edit(set_op(1, "pos", "@RAW@")), '"@RAW@"', text)


def build() -> None:
    base = dump(BASE)
    add("00_valid_base.json", base, None)

    # A1: op names that are not plain registered names, never resolved by import
    for name, op, culprit in [
        ("01_op_os_system", "os.system", "os.system"),
        ("02_op_builtins_eval", "builtins.eval", "builtins.eval"),
        ("03_op_dunder_import", "__import__", "__import__"),
        ("04_op_dotted_path", "graphdiff.ops.arithmetic.add", "graphdiff.ops"),
        ("05_op_module_colon_attr", "os:system", "os:system"),
        ("06_op_cyrillic_lookalike", "\u0430dd", "\\u0430dd"),
        ("07_op_zero_width_space", "add\u200b", "add\\u200b"),
        ("08_op_trailing_space", "add ", "'add '"),
        ("09_op_relative_path", "../add", "../add"),
        ("10_op_empty", "", "''"),
        ("11_op_huge_name", "a" * 100_000, "aaaa"),
        ("12_op_subprocess_popen", "subprocess.Popen", "subprocess.Popen"),
        ("13_op_numpy_load", "numpy.load", "numpy.load"),
        ("14_op_class_attribute", "add.__class__", "add.__class__"),
    ]:
        add(f"{name}.json", edit(set_op(5, "op", op)), "unknown_op", culprit,
            "/graph/nodes/5/attrs/op")
    add("15_op_object_not_name.json",
        edit(set_op(5, "op", {"module": "os", "name": "system"})), "unknown_op", "os",
        "/graph/nodes/5/attrs/op")
    add("16_activation_module_path.json", edit(set_op(4, "activation", "subprocess.Popen")),
        "unknown_op", "subprocess.Popen", "/graph/nodes/4/attrs/activation")
    add("17_plugin_table_module_path.json",
        edit(lambda d: d["ops"].__setitem__("os.system", {"distribution": None,
                                                           "version": None})),
        "unknown_op", "os.system")
    add("18_unregistered_op.json", edit(set_op(5, "op", "evil_loss")), "unknown_op",
        "evil_loss", "/graph/nodes/5/attrs/op")

    # A3/A4: unknown keys and switches meant to turn on unsafe behaviour
    add("19_top_safe_mode_false.json", edit(lambda d: d.__setitem__("safe_mode", False)),
        "extra_forbidden", "safe_mode", "/safe_mode")
    add("20_top_trust_remote_code.json",
        edit(lambda d: d.__setitem__("trust_remote_code", True)),
        "extra_forbidden", "trust_remote_code")
    add("21_graph_allow_pickle.json",
        edit(lambda d: d["graph"].__setitem__("allow_pickle", True)),
        "extra_forbidden", "allow_pickle", "/graph/allow_pickle")
    add("22_node_dunder_class.json",
        edit(lambda d: node(d, 4).__setitem__("__class__", "os._wrap_close")),
        "extra_forbidden", "__class__", "/graph/nodes/4/__class__")
    add("23_tensor_external_path.json",
        edit(lambda d: d["params"]["W"].__setitem__("path", "../../etc/passwd")),
        "extra_forbidden", "path", "/params/W/path")
    add("24_plugin_entry_point_field.json",
        edit(lambda d: d["ops"].__setitem__(
            "fancy", {"distribution": "fancy", "version": "1", "entry_point": "os:system"})),
        "extra_forbidden", "entry_point")
    add("25_edge_module_field.json",
        edit(lambda d: d["graph"]["edges"][1].__setitem__("module", "builtins")),
        "extra_forbidden", "module", "/graph/edges/1/module")

    # A9: duplicates
    add("26_duplicate_node_id.json",
        edit(lambda d: d["graph"]["nodes"].append({"id": "h", "attrs": {"op": "os.system"}})),
        "duplicate_id", "'h'", "/graph/nodes/6/id")
    add("27_duplicate_key_top.json",
        replace_once(base, '"loss": "E",', '"loss": "E",\n "loss": "h",'),
        "duplicate_key", "loss", "/loss")
    add("28_duplicate_key_in_node.json",
        replace_once(base, '"op": "hinge"', '"op": "hinge", "op": "os.system"'),
        "duplicate_key", "'op'", "/graph/nodes/5/attrs/op")
    add("29_duplicate_param_name.json",
        replace_once(base, ' "params": {\n', ' "params": {\n  "u": ' +
                     json.dumps(tensor("float64", [], f64(9.0))) + ",\n"),
        "duplicate_key", "'u'", "/params/u")
    add("30_duplicate_key_in_tensor.json",
        replace_once(base, f'"data": "{f64(-0.25)}"',
                     f'"data": "{f64(-0.25)}", "data": "{f64(1e300)}"'),
        "duplicate_key", "'data'", "/params/v/data")
    add("31_duplicate_edge.json",
        edit(lambda d: d["graph"]["edges"].append(copy.deepcopy(d["graph"]["edges"][2]))),
        "duplicate_id", "'x2' -> 'h'", "/graph/edges/4")
    add("32_attr_in_attrs_and_arrays.json",
        edit(lambda d: node(d, 3)["attrs"].__setitem__("value", [0.5, -1.0])),
        "duplicate_key", "value")

    # A12: structural lies
    add("33_edge_to_missing_node.json",
        edit(lambda d: d["graph"]["edges"].append({"source": "h", "target": "ghost"})),
        "missing_node", "ghost", "/graph/edges/4/target")
    add("34_edge_from_missing_node.json",
        edit(lambda d: d["graph"]["edges"].append({"source": 7, "target": "h"})),
        "missing_node", "7", "/graph/edges/4/source")
    add("35_loss_missing_node.json", edit(lambda d: d.__setitem__("loss", "E2")),
        "missing_node", "E2", "/loss")
    add("36_cycle.json",
        edit(lambda d: d["graph"]["edges"].append({"source": "E", "target": "x1"})),
        "cycle", "'x1'")
    add("37_self_loop.json",
        edit(lambda d: d["graph"]["edges"].append({"source": "h", "target": "h"})),
        "cycle", "'h' -> 'h'")
    add("38_edge_to_int_1_where_node_is_str_1.json",
        edit(lambda d: (d["graph"]["nodes"].append({"id": "1"}),
                        d["graph"]["edges"].append({"source": "x1", "target": 1}))),
        "missing_node", "1", "/graph/edges/4/target")

    # A6: declared sizes
    add("39_shape_2p32_squared.json",
        edit(lambda d: d["params"]["W"].__setitem__("shape", [2**32, 2**32])),
        "too_large", "18446744073709551616", "/params/W/shape")
    add("40_shape_1e12_elements.json",
        edit(lambda d: d["params"]["W"].__setitem__("shape", [10**6, 10**6])),
        "too_large", "1000000000000", "/params/W/shape")
    add("41_shape_2p63_by_2.json",
        edit(lambda d: node(d, 3)["arrays"]["value"].__setitem__("shape", [2**63, 2])),
        "too_large", "elements", "/graph/nodes/3/arrays/value/shape")
    add("42_total_elements_over_limit.json",
        edit(lambda d: d["params"].update(
            {f"p{i}": tensor("float64", [100], f64(*[0.0] * 100)) for i in range(12)})),
        "too_large", "max_elements", limits={"max_elements": 1000})
    add("43_shape_negative_dim.json",
        edit(lambda d: d["params"]["W"].__setitem__("shape", [-2])),
        "bad_shape", "-2", "/params/W/shape/0")
    add("44_shape_bool_dim.json",
        edit(lambda d: d["params"]["W"].__setitem__("shape", [True, 2])),
        "bad_shape", "True", "/params/W/shape/0")
    add("45_shape_float_dim.json",
        edit(lambda d: d["params"]["W"].__setitem__("shape", [1.5])),
        "bad_shape", "1.5", "/params/W/shape/0")
    add("46_shape_string_dim.json",
        edit(lambda d: d["params"]["W"].__setitem__("shape", ["2"])),
        "bad_shape", "'2'", "/params/W/shape/0")
    add("47_shape_rank_40.json",
        edit(lambda d: d["params"]["W"].__setitem__("shape", [1] * 39 + [2])),
        "bad_shape", "rank 40", "/params/W/shape")
    add("48_shape_rank_100.json",
        edit(lambda d: d["params"]["W"].__setitem__("shape", [1] * 100)),
        "bad_shape", "64", "/params/W/shape")

    # A7: payloads
    add("49_payload_one_element_short.json",
        edit(lambda d: d["params"]["W"].__setitem__("data", f32(1.0))),
        "payload_mismatch", "12", "/params/W/data")
    add("50_payload_one_element_long.json",
        edit(lambda d: d["params"]["W"].__setitem__("data", f32(1.0, 2.0, 3.0))),
        "payload_mismatch", "16", "/params/W/data")
    add("51_payload_trailing_junk.json",
        edit(lambda d: d["params"]["u"].__setitem__("data", f64(0.5) + "AAAA")),
        "payload_mismatch", "16", "/params/u/data")
    add("52_payload_padding_lie.json",
        edit(lambda d: d["params"]["W"].__setitem__("data", "AACAPwAAAE==")),
        "payload_mismatch", "decodes to 7 bytes", "/params/W/data")
    add("53_payload_not_base64.json",
        edit(lambda d: d["params"]["W"].__setitem__("data", "!!!!AACAPwAA")),
        "bad_base64", "base64", "/params/W/data")
    add("54_payload_urlsafe_alphabet.json",
        edit(lambda d: d["params"]["u"].__setitem__("data", "AAAAAAAA4D-=")),
        "bad_base64", "base64", "/params/u/data")
    add("55_payload_empty_for_nonempty_shape.json",
        edit(lambda d: d["params"]["W"].__setitem__("data", "")),
        "payload_mismatch", "0 base64", "/params/W/data")

    # A11: dtypes
    for i, dtype in enumerate(["object", "complex128", ">f8", "int64", "float16", "bool", "O",
                               "<U4"]):
        add(f"{56 + i}_dtype_{dtype.replace('>', 'be_').replace('<', 'le_')}.json",
            edit(lambda d, dt=dtype: d["params"]["u"].__setitem__("dtype", dt)),
            "bad_dtype", repr(dtype), "/params/u/dtype")

    # A10: non-finite numbers, as JSON tokens and as bit patterns in payloads
    add("64_nan_token_in_weight.json",
        replace_once(base, '"weight": 0.5', '"weight": NaN'),
        "non_finite", "NaN", "/graph/edges/1/attrs/weight")
    add("65_infinity_token_in_bias.json",
        replace_once(base, '"bias": 0.125', '"bias": -Infinity'),
        "non_finite", "Infinity", "/graph/nodes/4/attrs/bias")
    add("66_1e999_overflow_in_weight.json",
        replace_once(base, '"weight": 0.5', '"weight": 1e999'),
        "non_finite", "1e999", "/graph/edges/1/attrs/weight")
    add("67_nan_bits_in_param.json",
        edit(lambda d: d["params"]["v"].__setitem__("data", f64(float("nan")))),
        "non_finite", "nan", "/params/v")
    add("68_inf_bits_in_float32_param.json",
        edit(lambda d: d["params"]["W"].__setitem__("data", f32(1.0, float("-inf")))),
        "non_finite", "(1,)", "/params/W")
    add("69_nan_bits_in_node_array.json",
        edit(lambda d: node(d, 3)["arrays"]["value"].__setitem__(
            "data", f32(float("nan"), 0.0))),
        "non_finite", "nan", "/graph/nodes/3/arrays/value")

    # A6/A8: sizes of the file itself and of its nesting
    add("70_file_over_size_limit.json", base, "file_too_large", "max_file_bytes",
        limits={"max_file_bytes": 1000})
    add("71_nesting_100000_deep.json",
        raw_pos("[" * 100_000 + "]" * 100_000),
        "too_deep", "deeper than 32", "")
    add("72_nesting_just_over_limit.json",
        raw_pos("[" * 28 + "]" * 28),
        "too_deep", "deeper than 32", "")
    add("73_too_many_nodes.json", base, "too_large", "max_nodes", "/graph/nodes",
        limits={"max_nodes": 5})
    add("74_integer_5000_digits.json",
        replace_once(base, '"port": 1', '"port": ' + "9" * 5000),
        "too_large", "too long")

    # truncated and malformed files
    add("75_truncated_half.json", base[: base.index("\n", len(base) // 2)], "truncated",
        "unclosed")
    add("76_truncated_in_string.json", base[: base.index(f32(1.0, 2.0)) + 5], "truncated",
        "never closed")
    add("77_not_utf8.json", base.encode().replace(b'"hinge"', b'"hin\xffe"'), "bad_encoding",
        "0xff")
    add("78_not_json.json", base.replace('"loss": "E",', '"loss": E,'), "bad_json", "line 4")
    add("79_utf8_bom.json", "\ufeff" + base, "bad_json", "BOM")
    add("80_top_level_array.json", "[" + base + "]", "wrong_format", "list")
    add("81_format_pickle.json", edit(lambda d: d.__setitem__("format", "pickle")),
        "wrong_format", "pickle", "/format")
    add("82_checkpoint_given_to_load.json",
        edit(lambda d: d.__setitem__("format", "graphdiff-checkpoint")),
        "wrong_format", "load_checkpoint", "/format")

    # A14: versions
    add("83_future_major_version.json", edit(lambda d: d.__setitem__("format_version", "2.0")),
        "unsupported_version", "'2.0'", "/format_version")
    add("84_version_missing.json", edit(lambda d: d.pop("format_version")),
        "unsupported_version", "None", "/format_version")
    add("85_version_number_not_string.json",
        edit(lambda d: d.__setitem__("format_version", 1.0)),
        "unsupported_version", "1.0", "/format_version")
    add("86_version_three_parts.json",
        edit(lambda d: d.__setitem__("format_version", "1.0.0")),
        "unsupported_version", "1.0.0", "/format_version")

    # plugins: the file says which package provides an op, and nothing is imported
    add("87_missing_plugin.json",
        edit(lambda d: (set_op(5, "op", "fancy_loss")(d), d["ops"].__setitem__(
            "fancy_loss", {"distribution": "graphdiff-fancy", "version": "1.2"}))),
        "missing_plugin", "graphdiff-fancy", "/graph/nodes/5/attrs/op")
    add("88_missing_plugin_user_code.json",
        edit(lambda d: (set_op(4, "activation", "my_act")(d), d["ops"].__setitem__(
            "my_act", {"distribution": None, "version": None}))),
        "missing_plugin", "my_act", "/graph/nodes/4/attrs/activation")

    # strict types: no coercion
    add("89_node_id_bool.json", edit(lambda d: node(d, 0).__setitem__("id", True)),
        "bad_id", "True", "/graph/nodes/0/id")
    add("90_node_id_float.json", edit(lambda d: node(d, 0).__setitem__("id", 1.5)),
        "bad_id", "1.5", "/graph/nodes/0/id")
    add("91_node_id_list.json", edit(lambda d: node(d, 0).__setitem__("id", ["t"])),
        "bad_id", "['t']", "/graph/nodes/0/id")
    add("92_multigraph_as_string.json",
        edit(lambda d: d["graph"].__setitem__("multigraph", "false")),
        "bad_type", "'false'", "/graph/multigraph")
    add("93_undirected_graph.json", edit(lambda d: d["graph"].__setitem__("directed", False)),
        "bad_type", "False", "/graph/directed")
    add("94_edge_key_in_digraph.json",
        edit(lambda d: d["graph"]["edges"][0].__setitem__("key", 0)),
        "extra_forbidden", "key", "/graph/edges/0/key")
    add("95_node_missing_id.json", edit(lambda d: node(d, 2).pop("id")),
        "missing_field", "id", "/graph/nodes/2/id")

    add("97_empty_shape_with_huge_axis.json",
        edit(lambda d: d["params"]["W"].update(shape=[0, 2**64], data="")),
        "too_large", "[0, 18446744073709551616]", "/params/W/shape")

    # issue 13: loads bounded by the file's size, not its shape
    add("98_many_small_values.json",
        edit(set_op(1, "blob", [0.5] * 400)),
        "too_many_values", "max_json_values", "", limits={"max_json_values": 300})
    add("99_long_text_outside_payloads.json",
        edit(set_op(1, "label", "x" * 3000)),
        "text_too_large", "max_text_bytes", "", limits={"max_text_bytes": 2500})
    add("9a_param_node_shape_attribute_huge.json",
        edit(set_op(3, "shape", [100_000, 100_000])),
        "too_large", "[100000, 100000]", "/graph/nodes/3/attrs/shape")
    add("9b_param_node_shape_attribute_rank_40.json",
        edit(set_op(3, "shape", [1] * 40)),
        "bad_shape", "rank 40", "/graph/nodes/3/attrs/shape")
    add("9c_many_strings.json",
        edit(set_op(1, "blob", ["ab"] * 400)),
        "too_many_values", "max_json_values", "", limits={"max_json_values": 300})
    add("9d_many_empty_lists.json",
        edit(set_op(1, "blob", [[]] * 400)),
        "too_many_values", "max_json_values", "", limits={"max_json_values": 300})

    # issue 15: the graph's own attributes (G.graph) are checked as a node's
    add("9e_graph_attr_in_attrs_and_arrays.json",
        edit(lambda d: d["graph"].update(attrs={"pos": [0, 1]},
                                         arrays={"pos": tensor("float64", [1], f64(1.0))})),
        "duplicate_key", "the graph", "/graph/arrays/pos")
    add("9f_graph_array_huge_shape.json",
        edit(lambda d: d["graph"].update(arrays={"big": tensor("float64", [2**32, 2**32], "")})),
        "too_large", "[4294967296, 4294967296]", "/graph/arrays/big/shape")
    add("9g_graph_array_nan_bits.json",
        edit(lambda d: d["graph"].update(arrays={"v": tensor("float64", [1], f64(math.nan))})),
        "non_finite", "nan", "/graph/arrays/v")

    # found by fuzzing: an unhashable value where a name is looked up
    add("96_format_is_an_object.json",
        edit(lambda d: d.__setitem__("format", {"module": "os"})),
        "wrong_format", "'module'", "/format")


def main() -> None:
    build()
    for old in os.listdir(HERE):
        if old.endswith(".json") and old != "expected.json" and old not in FILES:
            os.remove(os.path.join(HERE, old))
    for name, data in FILES.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(CORPUS, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(FILES)} files")


if __name__ == "__main__":
    main()
