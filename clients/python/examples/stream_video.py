"""Streams a video through an ffmpeg pipe as gray frames at the model's input size (the server's cheapest
path) and prints each pair's match count. Needs Debian's ffmpeg.

    python examples/stream_video.py VIDEO [ADDRESS]     (after pip install ./clients/python)
"""
import os
import subprocess
import sys

import grpc
import numpy as np

from videomatch_client import PairResult, VideoMatchClient, describe_error

video = sys.argv[1]
address = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:50051"


def gray_frames(path, width, height):
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-i", path, "-vf", f"scale={width}:{height}:flags=bilinear",
         "-pix_fmt", "gray", "-f", "rawvideo", "pipe:1"], stdout=subprocess.PIPE)
    size = width * height
    try:
        while len(chunk := ffmpeg.stdout.read(size)) == size:
            yield np.frombuffer(chunk, dtype=np.uint8).reshape(height, width)
    finally:
        ffmpeg.kill()


try:
    with VideoMatchClient(address) as client:
        info = client.model_info()
        pairs = 0
        for result in client.stream(gray_frames(video, info.input_width, info.input_height), name=os.path.basename(video)):
            if isinstance(result, PairResult):
                pairs += 1
                print(f"frames {result.sequence0}->{result.sequence1}: {len(result.matches)} matches "
                      f"(queue {result.timings.queue_wait_ms:.0f} ms, model {result.timings.inference_ms:.0f} ms)")
        print(f"{pairs} pairs")
except (grpc.RpcError, OSError, ValueError) as error:
    sys.exit(f"videomatch: {describe_error(error, address)}")
