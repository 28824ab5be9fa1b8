"""The command line and what it writes: the ONNX graph's shape and ops, the manifest, the self-check."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx

from fixtures import folder, skip_unless
from videomatch_export import contract, onnx_export, safetensors_io

EXPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export.py")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, EXPORT, *args], capture_output=True, text=True, timeout=600)


@skip_unless("tiny")
class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.temp.name, "tiny")
        cls.result = run("--checkpoint", folder("tiny"), "--out", cls.out, "--height", "128", "--width", "160", "--top-k", "64")

    @classmethod
    def tearDownClass(cls):
        cls.temp.cleanup()

    def test_writes_the_model_folder_and_says_what_it_wrote(self):
        self.assertEqual(0, self.result.returncode, self.result.stderr)
        self.assertEqual({"model.onnx", "videomatch-model.json", "selfcheck.safetensors"}, set(os.listdir(self.out)))
        self.assertIn("wrote", self.result.stdout)
        self.assertIn("top-k 64", self.result.stdout)
        self.assertIn("keeps only matches scoring above its coarse threshold 0.2", self.result.stdout)

    def test_graph_has_a_dynamic_batch_static_shapes_and_no_slow_ops(self):
        graph = onnx.load(os.path.join(self.out, "model.onnx"))
        dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        self.assertEqual({"pixel_values": ["batch", 2, 1, 128, 160]}, {v.name: dims(v) for v in graph.graph.input})
        self.assertEqual({"matches": ["batch", 2, 320], "matching_scores": ["batch", 2, 320], "keypoints": ["batch", 2, 320, 2]},
                         {v.name: dims(v) for v in graph.graph.output})
        self.assertEqual(onnx.TensorProto.UINT8, graph.graph.input[0].type.tensor_type.elem_type)
        ops = {n.op_type for n in graph.graph.node}
        self.assertFalse(ops & onnx_export.FORBIDDEN, ops & onnx_export.FORBIDDEN)
        self.assertIn("TopK", ops)
        self.assertNotIn("BatchNormalization", ops, "fused: no batch norm left")
        self.assertEqual([17], [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")])
        self.assertLessEqual(graph.ir_version, 8 if onnx.__version__.startswith("1.12") else 10)

    def test_manifest_is_what_the_server_reads(self):
        with open(os.path.join(self.out, "videomatch-model.json")) as f:
            manifest = json.load(f)
        self.assertEqual("Dense", manifest["family"])
        self.assertEqual({"width": 160, "height": 128, "channels": 1, "elementType": "UInt8"}, manifest["input"])
        self.assertEqual({"layout": "PairSlots"}, manifest["outputs"])
        # The contract: every graph with its tensors, written from contract.py (the server checks sessions against it).
        self.assertEqual([{
            "role": "pair", "precision": "fp32", "file": "model.onnx",
            "inputs": [{"name": "pixel_values", "dtype": "uint8", "shape": ["batch", 2, 1, 128, 160]}],
            "outputs": [{"name": "matches", "dtype": "int64", "shape": ["batch", 2, 320]},
                        {"name": "matching_scores", "dtype": "float32", "shape": ["batch", 2, 320]},
                        {"name": "keypoints", "dtype": "float32", "shape": ["batch", 2, 320, 2]}],
        }], manifest["graphs"])
        self.assertEqual(64, manifest["maxMatches"])
        self.assertEqual(0.2, manifest["defaultThreshold"])
        self.assertEqual(64, len(manifest["export"]["configSha256"]))
        self.assertEqual("tiny", manifest["export"]["checkpoint"], "the folder's name, not this machine's path")
        self.assertEqual(64, len(manifest["export"]["checkpointSha256"]))
        self.assertEqual({"height": 128, "width": 160, "topK": 64, "fp16": False, "hfCompat": False, "fused": True, "split": False}, manifest["export"]["options"])

    def test_self_check_holds_inputs_and_outputs_of_the_module(self):
        tensors, metadata = safetensors_io.read(os.path.join(self.out, "selfcheck.safetensors"))
        self.assertEqual((3, 2, 1, 128, 160), tensors["pixel_values"].shape)
        self.assertEqual(np.uint8, tensors["pixel_values"].dtype)
        self.assertEqual((3, 2, 320), tensors["matches"].shape)
        self.assertEqual((3, 2, 320, 2), tensors["keypoints"].shape)
        # The whole-cell shift and the identical pair match under the fixture's random weights too (measured: 35).
        self.assertGreaterEqual(int(metadata["valid_slots"]), 10)
        # The server reads PyTorch's outputs with this layout and its own with the manifest's.
        self.assertEqual("PairSlots", metadata["layout"])


@skip_unless("tiny")
class SplitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.TemporaryDirectory()
        cls.result = run("--checkpoint", folder("tiny"), "--out", cls.temp.name, "--height", "128", "--width", "160", "--split")

    @classmethod
    def tearDownClass(cls):
        cls.temp.cleanup()

    def test_split_graphs_have_a_frame_bank_interface(self):
        self.assertEqual(0, self.result.returncode, self.result.stderr)
        dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        encoder = onnx.load(os.path.join(self.temp.name, "encoder.onnx"))
        matcher = onnx.load(os.path.join(self.temp.name, "matcher.onnx"))
        self.assertEqual({"frames": ["frames", 1, 128, 160]}, {v.name: dims(v) for v in encoder.graph.input})
        self.assertEqual({"stage1": ["frames", 24, 64, 80], "stage2": ["frames", 32, 32, 40], "coarse0": ["frames", 64, 16, 20]},
                         {v.name: dims(v) for v in encoder.graph.output})
        self.assertEqual({"bank_stage1": ["slots", 24, 64, 80], "bank_stage2": ["slots", 32, 32, 40], "bank_coarse0": ["slots", 64, 16, 20],
                          "pairs": ["batch", 2]}, {v.name: dims(v) for v in matcher.graph.input})
        self.assertEqual(["batch", 2, 320, 2], dims(matcher.graph.output[2]))
        for graph in (encoder, matcher):
            self.assertFalse({n.op_type for n in graph.graph.node} & onnx_export.FORBIDDEN)
        with open(os.path.join(self.temp.name, "videomatch-model.json")) as f:
            graphs = json.load(f)["graphs"]
        self.assertEqual([("pair", "fp32", "model.onnx"), ("encoder", "fp32", "encoder.onnx"), ("matcher", "fp32", "matcher.onnx")],
                         [(g["role"], g["precision"], g["file"]) for g in graphs])
        # Each graph as the manifest describes it, checked by the same comparison the exporter runs.
        for spec, graph in ((graphs[1], encoder), (graphs[2], matcher)):
            self.assertEqual([], contract.problems(graph, spec))


@skip_unless("tiny")
class Fp16Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.TemporaryDirectory()
        cls.result = run("--checkpoint", folder("tiny"), "--out", cls.temp.name, "--height", "128", "--width", "160", "--fp16", "--split")
        with open(os.path.join(cls.temp.name, "videomatch-model.json")) as f:
            cls.graphs = {(g["role"], g["precision"]): g for g in json.load(f)["graphs"]}

    @classmethod
    def tearDownClass(cls):
        cls.temp.cleanup()

    def load(self, role: str) -> onnx.ModelProto:
        return onnx.load(os.path.join(self.temp.name, self.graphs[(role, "fp16")]["file"]))

    def test_fp16_graphs_are_in_the_manifest_with_the_fp32_interface(self):
        self.assertEqual(0, self.result.returncode, self.result.stderr)
        self.assertEqual({("pair", "fp32"), ("encoder", "fp32"), ("matcher", "fp32"), ("pair", "fp16"), ("encoder", "fp16"), ("matcher", "fp16")},
                         set(self.graphs))
        for role in ("pair", "encoder", "matcher"):
            fp32, fp16 = self.graphs[(role, "fp32")], self.graphs[(role, "fp16")]
            self.assertEqual((fp32["inputs"], fp32["outputs"]), (fp16["inputs"], fp16["outputs"]), role)
            self.assertEqual([], contract.problems(self.load(role), fp16), role)
        # The exporter cannot run the fp16 graphs here; it says so, and how to check them, on one line.
        self.assertIn(f"WARNING: model-fp16.onnx and encoder-fp16.onnx and matcher-fp16.onnx are not checked by the exporter: run `videomatch verify {self.temp.name}`",
                      self.result.stderr)

    def test_fp16_pair_graph_runs_the_convolutions_in_fp16_and_keeps_the_interface(self):
        graph = self.load("pair")
        # Types must agree everywhere (strict inference), and the interface is the fp32 graph's.
        onnx.shape_inference.infer_shapes(graph, check_type=True, strict_mode=True)
        self.assertEqual(onnx.TensorProto.UINT8, graph.graph.input[0].type.tensor_type.elem_type)
        self.assertEqual([onnx.TensorProto.INT64, onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT],
                         [o.type.tensor_type.elem_type for o in graph.graph.output])
        self.assertEqual({onnx.TensorProto.FLOAT16}, conv_weight_types(graph))
        # The coarse similarity (the matrix product of the two images' features) stays fp32: its inputs are cast back.
        casts_back = [n for n in graph.graph.node if n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT]
        self.assertGreaterEqual(len(casts_back), 2)

    def test_fp16_split_runs_backbone_transformer_and_fpn_in_fp16_and_banks_fp32(self):
        encoder, matcher = self.load("encoder"), self.load("matcher")
        for graph in (encoder, matcher):
            onnx.shape_inference.infer_shapes(graph, check_type=True, strict_mode=True)
        self.assertEqual({onnx.TensorProto.FLOAT16}, conv_weight_types(encoder), "the backbone")
        self.assertEqual({onnx.TensorProto.FLOAT16}, conv_weight_types(matcher), "the FPN")
        # The features the bank holds stay fp32 both ways.
        self.assertEqual({onnx.TensorProto.FLOAT}, {o.type.tensor_type.elem_type for o in encoder.graph.output})
        self.assertEqual({onnx.TensorProto.FLOAT}, {i.type.tensor_type.elem_type for i in matcher.graph.input[:3]})
        weights = {i.name: i.data_type for i in matcher.graph.initializer}
        attention = {weights[n.input[1]] for n in matcher.graph.node if n.op_type == "MatMul" and n.input[1] in weights}
        self.assertEqual({onnx.TensorProto.FLOAT16}, attention, "the transformer's projections")


def conv_weight_types(graph: onnx.ModelProto) -> set:
    weights = {i.name: i.data_type for i in graph.graph.initializer}
    return {weights[n.input[1]] for n in graph.graph.node if n.op_type == "Conv"}


class CommandLineTest(unittest.TestCase):
    def test_no_checkpoint_prints_the_download_command(self):
        result = run()
        self.assertEqual(2, result.returncode)
        self.assertIn("huggingface-cli download zju-community/matchanything_eloftr", result.stderr)

    def test_folder_without_weights_names_the_missing_file(self):
        with tempfile.TemporaryDirectory() as temp:
            with open(os.path.join(temp, "config.json"), "w") as f:
                f.write("{}")
            result = run("--checkpoint", temp, "--out", os.path.join(temp, "out"))
        self.assertEqual(1, result.returncode)
        self.assertIn("has no model.safetensors", result.stderr)

    def test_bad_arguments_are_refused_in_one_line_before_any_work(self):
        with tempfile.TemporaryDirectory() as temp:
            config = os.path.join(temp, "config.json")
            with open(config, "w") as f:
                f.write("{}")
            cases = [(("--checkpoint", temp, "--out", config), "--out " + config + " is a file; give a folder"),
                     (("--checkpoint", temp, "--out", os.path.join(temp, "out"), "--top-k", "-1"), "--top-k -1: give 0 (every coarse cell) or a positive"),
                     (("--checkpoint", config, "--out", os.path.join(temp, "out")), "is a file; give the folder that holds config.json")]
            for args, expected in cases:
                result = run(*args)
                self.assertEqual(2, result.returncode, result.stderr)
                self.assertIn(expected, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                self.assertEqual(1, len(result.stderr.strip().splitlines()), result.stderr)

    @skip_unless("tiny")
    def test_size_not_a_multiple_of_32_is_refused_in_one_line(self):
        with tempfile.TemporaryDirectory() as temp:
            result = run("--checkpoint", folder("tiny"), "--out", temp, "--height", "100")
        self.assertEqual(1, result.returncode)
        self.assertIn("multiples of 32", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    unittest.main()
