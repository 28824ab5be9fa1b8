"""Tests of the Python client against a running server (VIDEOMATCH_ADDRESS, default 127.0.0.1:50051)."""
import os
import subprocess
import sys
import tempfile
import unittest

import grpc
import numpy as np

from scenes import crop, texture
from videomatch_client import FrameStatus, PairResult, VideoMatchClient, describe_error

try:
    from PIL import Image
except ImportError:  # the client works without Pillow; the tests of what it adds skip
    Image = None

ADDRESS = os.environ.get("VIDEOMATCH_ADDRESS", "127.0.0.1:50051")


def median_motion(matches):
    return np.median(matches.keypoints1 - matches.keypoints0, axis=0)


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = VideoMatchClient(ADDRESS)
        cls.picture = texture(400, 520, seed=3)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_model_info_names_model_and_gray8(self):
        info = self.client.model_info()
        self.assertTrue(info.model_name)
        self.assertGreater(info.input_width, 0)
        self.assertEqual(info.preferred_pixel_format, 1)  # PIXEL_FORMAT_GRAY8

    def test_match_pair_gray_arrays_recovers_shift(self):
        image0 = crop(self.picture, 40, 30, 320, 240)
        image1 = crop(self.picture, 46, 26, 320, 240)
        matches = self.client.match_pair(image0, image1)
        self.assertGreater(len(matches), 100)
        np.testing.assert_allclose(median_motion(matches), [-6, 4], atol=0.5)
        self.assertTrue(np.all(np.diff(matches.scores) <= 0), "sorted by score, highest first")

    @unittest.skipIf(Image is None, "Pillow is not installed (apt install python3-pil)")
    def test_match_pair_file_paths_and_pil_images_as_users_have_them(self):
        with tempfile.TemporaryDirectory() as folder:
            first, second = os.path.join(folder, "a.jpg"), os.path.join(folder, "b.webp")
            Image.fromarray(crop(self.picture, 40, 30, 320, 240)).save(first, quality=95)
            Image.fromarray(crop(self.picture, 46, 26, 320, 240)).save(second, lossless=True)
            from_paths = self.client.match_pair(first, second)
            from_pil = self.client.match_pair(Image.open(first), Image.open(second).convert("RGB"))
        for matches in (from_paths, from_pil):
            self.assertGreater(len(matches), 100)
            np.testing.assert_allclose(median_motion(matches), [-6, 4], atol=0.5)

    @unittest.skipIf(Image is None, "Pillow is not installed (apt install python3-pil)")
    def test_match_pair_photo_over_the_pixel_limit_downscaled_with_keypoints_in_its_own_pixels(self):
        big = texture(3024, 4032, seed=5)
        with tempfile.TemporaryDirectory() as folder:
            first, second = os.path.join(folder, "a.jpg"), os.path.join(folder, "b.jpg")
            Image.fromarray(crop(big, 0, 0, 4000, 3000)).save(first, quality=95)
            Image.fromarray(crop(big, 24, 12, 4000, 3000)).save(second, quality=95)
            matches = self.client.match_pair(first, second)
        self.assertGreater(len(matches), 100)
        self.assertLess(float(matches.keypoints0[:, 0].max()), 4000)
        self.assertGreater(float(matches.keypoints0[:, 0].max()), 3000, "keypoints are in the file's pixels, not the sent ones")
        np.testing.assert_allclose(median_motion(matches), [-24, -12], atol=2)

    def test_bad_images_say_what_to_pass_in_one_line(self):
        with tempfile.TemporaryDirectory() as folder:
            empty = os.path.join(folder, "empty.jpg")
            open(empty, "wb").close()
            cases = [(empty, "empty.jpg is empty (0 bytes)"), (folder, "is a directory; give an image file"),
                     (os.path.join(folder, "missing.png"), "missing.png does not exist"),
                     (np.zeros((8, 8)), "image arrays must be uint8, got float64"), (3.5, "an image must be a numpy uint8 array")]
            for image, expected in cases:
                with self.assertRaises((ValueError, TypeError, OSError)) as raised:
                    self.client.match_pair(image, image)
                self.assertIn(expected, describe_error(raised.exception))
                self.assertNotIn("\n", describe_error(raised.exception))

    def test_example_without_a_server_prints_one_line(self):
        example = os.path.join(os.path.dirname(__file__), "..", "examples", "stream_numpy.py")
        run = subprocess.run([sys.executable, example, "127.0.0.1:9"], capture_output=True, text=True, timeout=60)
        self.assertEqual(1, run.returncode)
        self.assertEqual(1, len(run.stderr.strip().splitlines()), run.stderr)
        self.assertIn("could not reach the server at 127.0.0.1:9", run.stderr)

    def test_match_pair_rgb_arrays_with_threshold_and_limit(self):
        rgb0 = np.stack([crop(self.picture, 40, 30, 320, 240)] * 3, axis=2)
        rgb1 = np.stack([crop(self.picture, 42, 31, 320, 240)] * 3, axis=2)
        matches = self.client.match_pair(rgb0, rgb1, threshold=0.5, max_matches=20)
        self.assertEqual(len(matches), 20)
        self.assertTrue(np.all(matches.scores > 0.5))

    def test_stream_yields_first_frame_then_pairs_in_order(self):
        windows = [(40 + 3 * i, 30 + i) for i in range(5)]
        frames = [crop(self.picture, x, y, 320, 240) for x, y in windows]
        results = list(self.client.stream(frames, name="python-test", first_sequence=10))
        self.assertEqual(len(results), 5)
        self.assertIsInstance(results[0], FrameStatus)
        self.assertEqual((results[0].code, results[0].sequence), ("FIRST_FRAME", 10))
        for i, result in enumerate(results[1:], start=1):
            self.assertIsInstance(result, PairResult)
            self.assertEqual((result.sequence0, result.sequence1), (9 + i, 10 + i))
            np.testing.assert_allclose(median_motion(result.matches), [-3, -1], atol=0.5)

    def test_stream_estimate_similarity_gives_each_pairs_shift(self):
        frames = [crop(self.picture, 40 + 3 * i, 30 + i, 320, 240) for i in range(3)]
        results = list(self.client.stream(frames, estimate="similarity"))
        for result in results[1:]:
            self.assertIsInstance(result, PairResult)
            expected = np.array([[1, 0, -3], [0, 1, -1], [0, 0, 1]], dtype=np.float64)
            np.testing.assert_allclose(result.transform.matrix, expected, atol=0.3)
            self.assertEqual(len(result.transform.inlier_mask), len(result.matches))
            self.assertEqual(int(result.transform.inlier_mask.sum()), result.transform.inliers)
        with self.assertRaises(ValueError):
            next(self.client.stream(frames, estimate="projective"))

    def test_stream_keyframes_and_track_ids(self):
        # Scene A for frames 0-2, an unrelated picture for 3-5: the cut re-keys; ids persist within each scene.
        other = texture(480, 640, seed=9)
        frames = [crop(self.picture, 40 + 2 * i, 30, 320, 240) for i in range(3)]
        frames += [crop(other, 40 + 2 * i, 30, 320, 240) for i in range(3)]
        results = list(self.client.stream(frames, keyframes=True, rekey_min_inliers=30, estimate="similarity",
                                          track_ids=True))
        pairs = results[1:]
        self.assertEqual([p.sequence0 for p in pairs], [0, 0, 0, 3, 3])
        self.assertEqual([p.new_keyframe for p in pairs], [False, False, True, False, False])
        for pair in pairs:
            self.assertEqual(len(pair.matches.track_ids), len(pair.matches))
        kept = np.isin(pairs[1].matches.track_ids, pairs[0].matches.track_ids).mean()
        self.assertGreater(kept, 0.7)
        plain = list(self.client.stream(frames[:2]))
        self.assertEqual(len(plain[1].matches.track_ids), 0)
        self.assertFalse(plain[1].new_keyframe)

    def test_stream_bad_frame_gets_status_and_stream_goes_on(self):
        good = crop(self.picture, 40, 30, 320, 240)
        frames = [good, b"\xff\xd8 not a jpeg", crop(self.picture, 42, 30, 320, 240)]
        results = list(self.client.stream(frames))
        self.assertEqual(results[1].code, "INVALID")
        self.assertEqual(results[1].sequence, 1)
        self.assertIn("JPEG", results[1].message)
        self.assertEqual((results[2].sequence0, results[2].sequence1), (0, 2))

    def test_stream_frame_of_wrong_type_raises_in_the_caller_after_earlier_results(self):
        frames = [crop(self.picture, 40 + 2 * i, 30, 320, 240) for i in range(4)]
        frames[2] = frames[2].astype(np.float64)
        results = []
        with self.assertRaises(ValueError) as raised:
            for result in self.client.stream(frames):
                results.append(result)
        self.assertIn("uint8", str(raised.exception))
        self.assertEqual(len(results), 2, "the two frames sent before the bad one are answered")

    def test_stream_failing_frame_generator_raises_its_exception(self):
        def frames():
            yield crop(self.picture, 40, 30, 320, 240)
            raise RuntimeError("camera unplugged")

        with self.assertRaises(RuntimeError) as raised:
            list(self.client.stream(frames()))
        self.assertEqual(str(raised.exception), "camera unplugged")

    def test_match_pair_with_transform_and_letterbox(self):
        image0 = crop(self.picture, 40, 30, 320, 240)
        image1 = crop(self.picture, 46, 26, 320, 240)
        matches, transform = self.client.match_pair_with_transform(image0, image1, estimate="similarity", letterbox=True)
        self.assertGreater(len(matches), 100)
        np.testing.assert_allclose(transform.matrix[:2, 2], [-6, 4], atol=0.3)
        self.assertIsNone(self.client.match_pair_with_transform(image0, image1)[1])

    def test_match_pair_threshold_out_of_range_is_invalid_argument(self):
        image = crop(self.picture, 0, 0, 64, 64)
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.match_pair(image, image, threshold=1.5)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("match_threshold", raised.exception.details())

    def test_models_listed_and_chosen_by_name(self):
        listed = self.client.list_models()
        self.assertEqual("embedded", listed.default_model)
        self.assertEqual(["embedded"], [m.name for m in listed.models])
        self.assertTrue(listed.models[0].serving)
        image = crop(self.picture, 0, 0, 64, 64)
        with VideoMatchClient(ADDRESS, model="embedded") as named:
            self.assertEqual("embedded", named.model_info().name)
            named.match_pair(image, image)
        with VideoMatchClient(ADDRESS, model="superglue") as unknown:
            with self.assertRaises(grpc.RpcError) as raised:
                unknown.match_pair(image, image)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("'superglue' names no model of this server; it serves 'embedded'", raised.exception.details())
            with self.assertRaises(grpc.RpcError):
                list(unknown.stream([image, image]))


if __name__ == "__main__":
    unittest.main()
