"""bench.py --dry-run: every step of the GPU run on CPU with the tiny fixture, as CI runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "bench.py")
TINY = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "reference", "eloftr-fixtures", "tiny", "model.safetensors"))


@unittest.skipUnless(os.path.isfile(TINY), "../shared/reference/eloftr-fixtures/tiny is absent; the dry run exports that checkpoint")
class DryRunTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.TemporaryDirectory(prefix="bench-gpu-")
        cls.out = cls.folder.name
        cls.completed = subprocess.run([sys.executable, BENCH, "--out", cls.out, "--dry-run"], capture_output=True, text=True, timeout=600)
        with open(os.path.join(cls.out, "results.json")) as f:
            cls.results = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.folder.cleanup()

    def step(self, name):
        return self.results["steps"][name]

    def test_every_step_ran_or_says_why_not(self):
        self.assertEqual(self.completed.returncode, 0, self.completed.stdout + self.completed.stderr)
        for name in ("checkpoint", "export", "parity", "raw", "server"):
            self.assertEqual(self.step(name)["status"], "ok", self.step(name))
        # Without transformers the baseline cannot run; it says so instead of failing.
        baseline = self.step("baseline")
        self.assertIn(baseline["status"], ("ok", "skipped"))
        if baseline["status"] == "skipped":
            self.assertIn("transformers", baseline["detail"])

    def test_parity_agrees_with_hf_on_every_slot(self):
        rows = self.step("parity")["rows"]
        self.assertGreaterEqual(len(rows), 3)
        for row in rows:
            self.assertEqual(row["same_match"], 1.0, row)
            self.assertLess(row["max_score_diff"], 1e-4, row)

    def test_raw_session_and_server_measured_for_each_variant(self):
        rows = self.step("raw")["rows"]
        self.assertEqual({r["variant"] for r in rows}, {"fp32", "fp16", "split"})
        self.assertTrue(all(r["raw_pairs_per_s"] > 0 and r["server_pairs_per_s"] > 0 for r in rows), rows)
        self.assertIn("split", {r["graph"] for r in rows})

    def test_server_load_loses_no_frame(self):
        rows = self.step("server")["rows"]
        self.assertEqual([r["run"] for r in rows], ["load", "saturate"])
        for row in rows:
            self.assertEqual(row["unanswered"], 0, row)
            self.assertEqual(row["failed"], 0, row)
            self.assertGreater(row["pairs_per_s"], 0, row)

    def test_markdown_names_every_step_and_table(self):
        with open(os.path.join(self.out, "results.md")) as f:
            text = f.read()
        for heading in ("| checkpoint | ok", "## Parity", "## ONNX Runtime from C#", "## Full server over gRPC"):
            self.assertIn(heading, text)

    def test_only_reruns_one_step_and_keeps_the_others(self):
        rerun = subprocess.run([sys.executable, BENCH, "--out", self.out, "--dry-run", "--only", "parity"], capture_output=True, text=True, timeout=300)
        self.assertEqual(rerun.returncode, 0, rerun.stdout + rerun.stderr)
        with open(os.path.join(self.out, "results.json")) as f:
            after = json.load(f)
        self.assertEqual(after["steps"]["server"], self.results["steps"]["server"])
        self.assertEqual(after["steps"]["parity"]["status"], "ok")

    def test_failed_export_says_why_in_the_record(self):
        with tempfile.TemporaryDirectory(prefix="bench-gpu-broken-") as out:
            os.makedirs(os.path.join(out, "checkpoint"))
            with open(os.path.join(out, "checkpoint", "config.json"), "w") as f:
                f.write("{}")
            with open(os.path.join(out, "checkpoint", "model.safetensors"), "wb") as f:
                f.write(b"not safetensors")
            subprocess.run([sys.executable, BENCH, "--out", out, "--dry-run", "--only", "export"], capture_output=True, text=True, timeout=300)
            with open(os.path.join(out, "export.json")) as f:
                detail = json.load(f)["detail"]
        self.assertIn("export.py (fp32) with", detail)
        self.assertIn("failed: export.py:", detail)

    def test_unknown_step_is_refused_naming_the_steps(self):
        refused = subprocess.run([sys.executable, BENCH, "--out", self.out, "--only", "warp"], capture_output=True, text=True, timeout=60)
        self.assertEqual(refused.returncode, 2)
        self.assertIn("checkpoint, export, parity, baseline, raw, server", refused.stderr)


if __name__ == "__main__":
    unittest.main()
