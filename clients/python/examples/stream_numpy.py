"""Streams numpy frames (a window panning over a random texture) and prints each pair's median motion.

    /usr/bin/python3 examples/stream_numpy.py [ADDRESS]
"""
import os
import sys

import grpc
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from scenes import crop, texture  # noqa: E402
from videomatch_client import PairResult, VideoMatchClient, describe_error  # noqa: E402

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
picture = texture(600, 800)
frames = (crop(picture, 20 + 4 * i, 20 + 2 * i, 640, 480) for i in range(10))

try:
    with VideoMatchClient(address) as client:
        for result in client.stream(frames, name="numpy-example"):
            if isinstance(result, PairResult):
                motion = np.median(result.matches.keypoints1 - result.matches.keypoints0, axis=0)
                print(f"frames {result.sequence0}->{result.sequence1}: {len(result.matches)} matches, "
                      f"median motion ({motion[0]:+.2f}, {motion[1]:+.2f}) px, batch {result.timings.batch_size}")
            else:
                print(f"frame {result.sequence}: {result.code} {result.message}")
except (grpc.RpcError, OSError, ValueError) as error:
    sys.exit(f"videomatch: {describe_error(error, address)}")
