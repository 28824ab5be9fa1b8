"""What the module does that HF does not, each pinned: pair slots (checked with crafted confidences, since random
weights match every cell to itself), batch invariance, the original fine stage, fusion and top-K."""
import math
import unittest

import numpy as np
import torch

from fixtures import build, golden, pixels, skip_unless
from videomatch_export import fuse, selfcheck


def permutation_confidence(cells: int, partner: np.ndarray, seed: int) -> torch.Tensor:
    """A confidence matrix whose only strong entries are (n, partner[n]): 0.9 there, noise below 0.01 elsewhere."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0, 0.01, size=(cells, cells)).astype(np.float32)
    confidence[np.arange(cells), partner] = 0.9
    return torch.from_numpy(confidence)


@skip_unless("tiny")
class PairSlotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = build("tiny")

    def crafted(self):
        rows, cols = self.model.rows, self.model.cols
        r, c = np.divmod(np.arange(rows * cols), cols)
        rotation = (rows - 1 - r) * cols + (cols - 1 - c)  # 180°
        mirror = r * cols + (cols - 1 - c)  # left-right
        confidence = torch.stack([permutation_confidence(rows * cols, rotation, 1), permutation_confidence(rows * cols, mirror, 2)])
        inside = self.model.inside_border.numpy()
        return confidence, [rotation, mirror], inside

    def test_crafted_rotation_and_mirror_give_every_slot_its_partner(self):
        # HF pairs row 0 with row 1 by position: 0 of 48 pairs right for a rotation (efficientloftr.md, defect 2).
        confidence, partners, inside = self.crafted()

        partner, score = self.model.mutual_matches(confidence)

        for b, expected in enumerate(partners):
            valid = inside & inside[expected]
            np.testing.assert_array_equal(np.where(valid, expected, -1), partner[b].numpy(), f"batch element {b}")
            np.testing.assert_allclose(score[b].numpy()[valid], confidence[b].numpy()[np.arange(len(expected)), expected][valid])

    def test_crafted_partners_are_refined_in_their_own_cells(self):
        confidence, partners, _ = self.crafted()
        partner, score = self.model.mutual_matches(confidence)
        fine = torch.randn(4, self.model.cfg.fine_width, self.model.height_px, self.model.width_px)

        matches, _, keypoints = self.model._pair_slot_fine_stage(fine, partner, score, None)

        size = torch.tensor([self.model.width_px, self.model.height_px])
        points = keypoints * size
        for b in range(2):
            valid = matches[b, 0] >= 0
            cells = torch.nonzero(valid)[:, 0]
            for image, cell in ((0, cells), (1, matches[b, 0][valid])):
                corner = self.model.cell_points(cell)
                # Stage 1 lands within ±3.5 px of the cell's point; stage 2 moves image 1 by at most 1 px more.
                offset = (points[b, image][valid] - corner).abs().max()
                self.assertLessEqual(float(offset), 3.5 + (1.0 if image else 0.0) + 1e-4)

    def test_pair_alone_equals_the_same_pair_in_a_batch_of_eight(self):
        synthetic = torch.from_numpy(selfcheck.synthetic_pairs(128, 160, 8).astype(np.float32) / 255.0).expand(-1, -1, 3, -1, -1)
        fixtures = torch.cat([pixels("tiny", p) for p in ("pa", "pb", "pc", "pd")])
        batch = torch.cat([fixtures, synthetic, pixels("tiny", "pd").flip(-1)])[:8]
        self.assertEqual(8, batch.shape[0])

        together = self.model.forward_float(batch)
        for index in range(8):
            alone = self.model.forward_float(batch[index:index + 1])
            np.testing.assert_array_equal(alone[0].numpy(), together[0][index:index + 1].numpy(), f"pair {index}")
            np.testing.assert_allclose(alone[1].numpy(), together[1][index:index + 1].numpy(), atol=1e-5, rtol=0)
            np.testing.assert_allclose(alone[2].numpy(), together[2][index:index + 1].numpy(), atol=1e-5, rtol=0)


@skip_unless("tiny")
class FineStageTest(unittest.TestCase):
    """The original fine stage (zju3dv EfficientLoFTR fine_matching.py), re-computed here match by match in numpy
    from the module's own fine feature map, and where HF's differs."""

    @classmethod
    def setUpClass(cls):
        cls.model = build("tiny")
        cls.capture = {}
        cls.outputs = cls.model.forward_float(pixels("tiny", "pd"), cls.capture)

    def reference(self, fine0: np.ndarray, fine1: np.ndarray, cell0: int, cell1: int):
        cfg, model = self.model.cfg, self.model
        k, c = cfg.fine_kernel_size, cfg.fine_width
        split = c - cfg.fine_matching_slice_dim
        padded1 = np.pad(fine1, ((0, 0), (1, 1), (1, 1)))
        r0, c0 = divmod(cell0, model.cols)
        r1, c1 = divmod(cell1, model.cols)
        w0 = fine0[:, r0 * k:(r0 + 1) * k, c0 * k:(c0 + 1) * k].reshape(c, -1).T            # 64 × C, row-major
        w1 = padded1[:, r1 * k:r1 * k + k + 2, c1 * k:c1 * k + k + 2].reshape(c, -1).T       # 100 × C
        logits = (w0[:, :split] / math.sqrt(c)) @ (w1[:, :split] / math.sqrt(c)).T
        soft = lambda x, axis: np.exp(x - x.max(axis, keepdims=True)) / np.exp(x - x.max(axis, keepdims=True)).sum(axis, keepdims=True)
        confidence = soft(logits, 0) * soft(logits, 1)
        inner = confidence.reshape(k * k, k + 2, k + 2)[:, 1:-1, 1:-1].reshape(-1)
        l, r = divmod(int(inner.argmax()), k * k)
        point0 = np.array([c0 * 8 + l % k - 3.5, r0 * 8 + l // k - 3.5])
        point1 = np.array([c1 * 8 + r % k - 3.5, r1 * 8 + r // k - 3.5])
        ri, rj = divmod(r, k)
        logits2 = w0[l, split:] @ (w1[:, split:] / math.sqrt(cfg.fine_matching_slice_dim)).T
        heat = np.array([logits2[((ri + dy) % (k + 2)) * (k + 2) + (rj + dx) % (k + 2)] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
        heat = soft(heat / cfg.fine_matching_regress_temperature, 0)
        grid = np.array([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=np.float64)
        return point0, point1 + heat @ grid

    def test_refined_points_equal_the_original_algorithm_match_by_match(self):
        matches, _, keypoints = self.outputs
        fine = self.capture["fine"].double().numpy()
        size = np.array([self.model.width_px, self.model.height_px])
        valid = np.nonzero(matches[0, 0].numpy() >= 0)[0]
        self.assertGreater(len(valid), 20)
        for slot in valid:
            expected0, expected1 = self.reference(fine[0], fine[1], int(slot), int(matches[0, 0, slot]))
            np.testing.assert_allclose(keypoints[0, 0, slot].numpy() * size, expected0, atol=1e-3)
            np.testing.assert_allclose(keypoints[0, 1, slot].numpy() * size, expected1, atol=1e-3)

    def test_hf_stage_one_offsets_are_the_constant_of_its_gather_defect(self):
        hf = build("tiny", hf_compat=True)
        capture = {}
        hf.forward_float(pixels("tiny", "pd"), capture)
        offsets = capture["hf_stage1_points"] - capture["hf_coarse_points"]
        np.testing.assert_allclose(offsets.numpy(), -3.5)
        # The original stage 1 moves points by their argmax position: not constant.
        points = self.capture["points0"][0]
        corners = self.model.cell_points(self.capture["slots"][0])
        self.assertGreater(len(torch.unique(points - corners)), 2)


class SplitEqualsMonolithicTest(unittest.TestCase):
    """The stream split (per-frame encoder, then a matcher reading a feature bank) computes what the whole model does."""

    def check(self, config, pairs):
        from videomatch_export.model import FrameEncoder, PairMatcher
        model = fuse.fuse(build(config))
        frames = torch.cat([torch.from_numpy(selfcheck.quantize(golden(config)[f"{p}.pixel_values"])) for p in pairs])
        whole = model(frames)
        # Frames in the bank in another order than the pairs read them, as a bank fills up in practice.
        flat = frames.reshape(-1, 1, model.height_px, model.width_px)
        order = torch.arange(flat.shape[0]).flip(0)
        bank = FrameEncoder(model)(flat[order])
        slot_of = torch.argsort(order)
        split = PairMatcher(model)(*bank, slot_of.reshape(-1, 2))
        np.testing.assert_array_equal(whole[0].numpy(), split[0].numpy())
        np.testing.assert_allclose(whole[1].numpy(), split[1].numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(whole[2].numpy() * model.width_px, split[2].numpy() * model.width_px, atol=1e-3, rtol=0)
        return whole

    @skip_unless("tiny")
    def test_tiny_every_fixture_pair(self):
        whole = self.check("tiny", ("pa", "pb", "pc", "pd"))
        self.assertGreater(int((whole[0][:, 0] >= 0).sum()), 50)

    @skip_unless("default")
    def test_default_pair_a(self):
        whole = self.check("default", ("pa",))
        # HF matched 1618 cells on the float input; the uint8-quantised input the graphs take matches a few more.
        self.assertGreater(int((whole[0][:, 0] >= 0).sum()), 1500)


@skip_unless("tiny")
class FuseAndTopKTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = build("tiny")

    def test_fused_equals_unfused(self):
        fused = fuse.fuse(build("tiny"))
        for pair in ("pa", "pd"):
            a, b = self.model.forward_float(pixels("tiny", pair)), fused.forward_float(pixels("tiny", pair))
            np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
            # Folding changes summation order only: ~1e-6 relative on features.
            np.testing.assert_allclose(a[1].numpy(), b[1].numpy(), atol=1e-5, rtol=0)
            np.testing.assert_allclose(a[2].numpy() * 160, b[2].numpy() * 160, atol=1e-3, rtol=0)

    def test_fusion_removes_every_batch_norm(self):
        fused = fuse.fuse(build("tiny"))
        self.assertFalse(any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules()))

    def test_top_k_equals_the_full_refinement_on_the_slots_it_keeps(self):
        k = 16
        top = build("tiny", top_k=k)
        full = self.model.forward_float(pixels("tiny", "pa"))
        kept = top.forward_float(pixels("tiny", "pa"))

        valid_full = full[0][0, 0] >= 0
        valid_kept = kept[0][0, 0] >= 0
        self.assertEqual(46, int(valid_full.sum()))
        self.assertEqual(k, int(valid_kept.sum()))
        # The K highest scores of the full run, no other.
        best = torch.topk(full[1][0, 0], k).indices
        self.assertEqual(set(best.tolist()), set(torch.nonzero(valid_kept)[:, 0].tolist()))
        for output in range(3):
            np.testing.assert_allclose(kept[output][0][:, valid_kept].numpy(), full[output][0][:, valid_kept].numpy(), atol=1e-6, rtol=0)

    def test_top_k_with_hf_compat_is_refused(self):
        with self.assertRaisesRegex(ValueError, "drop --top-k"):
            build("tiny", top_k=8, hf_compat=True)


if __name__ == "__main__":
    unittest.main()
