"""The safetensors reader/writer, the config loader and the strict checkpoint loader."""
import json
import os
import tempfile
import unittest

import numpy as np

from fixtures import folder, skip_unless
from videomatch_export import checkpoint, config, safetensors_io


class SafetensorsTest(unittest.TestCase):
    def test_write_then_read_round_trips_every_dtype_and_metadata(self):
        tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([-1, 2], dtype=np.int64),
                   "c": np.zeros((0, 2), dtype=np.int32), "d": np.array([1, 255], dtype=np.uint8)}
        with tempfile.TemporaryDirectory() as temp:
            path = os.path.join(temp, "t.safetensors")
            safetensors_io.write(path, tensors, {"k": "v"})
            read, metadata = safetensors_io.read(path)
        self.assertEqual({"k": "v"}, metadata)
        for name, array in tensors.items():
            np.testing.assert_array_equal(array, read[name])
            self.assertEqual(array.dtype, read[name].dtype)

    def test_truncated_file_names_the_problem(self):
        with tempfile.TemporaryDirectory() as temp:
            path = os.path.join(temp, "t.safetensors")
            safetensors_io.write(path, {"a": np.ones(100, dtype=np.float32)})
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) - 10)
            with self.assertRaisesRegex(safetensors_io.SafetensorsError, "tensor 'a'"):
                safetensors_io.read(path)


@skip_unless("tiny")
class ConfigTest(unittest.TestCase):
    def test_fixture_configs_load_and_derived_sizes_match_the_files(self):
        for name in ("tiny", "default"):
            with open(os.path.join(folder(name), "config.json")) as f:
                raw = json.load(f)
            cfg = config.from_dict(raw)
            for key in ("stage_block_in_channels", "stage_block_out_channels", "stage_block_stride", "stage_in_channels", "fine_fusion_dims"):
                self.assertEqual(raw[key], getattr(cfg, key), key)
            self.assertEqual(8, cfg.coarse_stride_px)

    def test_config_without_derived_keys_derives_them_as_hf(self):
        with open(os.path.join(folder("default"), "config.json")) as f:
            raw = json.load(f)
        full = config.from_dict(raw)
        for key in ("stage_block_in_channels", "stage_block_out_channels", "stage_block_stride", "stage_in_channels", "fine_fusion_dims"):
            raw.pop(key)
        self.assertEqual(full.stage_block_in_channels, config.from_dict(raw).stage_block_in_channels)
        self.assertEqual(full.fine_fusion_dims, config.from_dict(raw).fine_fusion_dims)

    def test_unknown_architecture_key_stops_the_export(self):
        with open(os.path.join(folder("tiny"), "config.json")) as f:
            raw = json.load(f)
        raw["coarse_matching_thresh"] = 0.3
        with self.assertRaisesRegex(config.ConfigError, "coarse_matching_thresh"):
            config.from_dict(raw)

    def test_input_size_not_a_multiple_of_32_is_refused(self):
        cfg = config.load(os.path.join(folder("tiny"), "config.json"))
        with self.assertRaisesRegex(config.ConfigError, "multiples of 32"):
            cfg.check_input_size(100, 160)


@skip_unless("tiny")
class CheckpointTest(unittest.TestCase):
    def _copy(self, temp, mutate):
        tensors, _ = safetensors_io.read(os.path.join(folder("tiny"), "model.safetensors"))
        mutate(tensors)
        with open(os.path.join(folder("tiny"), "config.json")) as f:
            text = f.read()
        with open(os.path.join(temp, "config.json"), "w") as f:
            f.write(text)
        safetensors_io.write(os.path.join(temp, "model.safetensors"), tensors)
        return temp

    def test_missing_unexpected_and_misshaped_tensors_are_named(self):
        key = "refinement_layer.out_conv.weight"
        cases = [
            (lambda t: t.pop(key), f"missing \\(first: {key}"),
            (lambda t: t.__setitem__("extra.weight", np.zeros(1, np.float32)), "unexpected \\(first: extra.weight"),
            (lambda t: t.__setitem__(key, np.zeros((64, 64, 3, 3), np.float32)), f"{key}: checkpoint \\[64, 64, 3, 3\\], model \\[64, 64, 1, 1\\]"),
        ]
        for mutate, message in cases:
            with tempfile.TemporaryDirectory() as temp:
                with self.assertRaisesRegex(checkpoint.CheckpointError, message):
                    checkpoint.build(self._copy(temp, mutate), 128, 160)

    def test_absent_folder_says_how_to_download(self):
        with self.assertRaisesRegex(checkpoint.CheckpointError, "zju-community/matchanything_eloftr"):
            checkpoint.build("/nonexistent/checkpoint", 128, 160)


if __name__ == "__main__":
    unittest.main()
