"""Streams numpy frames (a window panning over a random texture) and prints each pair's median motion.

    python examples/stream_numpy.py [ADDRESS]        (after pip install ./clients/python)
"""
import sys

import grpc
import numpy as np

from videomatch_client import PairResult, VideoMatchClient, describe_error

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
# Random 8-pixel blocks: plenty of corners. A 640×480 window moving by (+4, +2) px a frame: content moves (-4, -2).
picture = (np.kron(np.random.default_rng(7).random((75, 100)), np.ones((8, 8))) * 255).astype(np.uint8)
frames = (np.ascontiguousarray(picture[20 + 2 * i:500 + 2 * i, 20 + 4 * i:660 + 4 * i]) for i in range(10))

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
