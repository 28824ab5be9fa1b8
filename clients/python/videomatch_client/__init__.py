"""Python client for the VideoMatch gRPC server.

Run ``generate.sh`` once (it needs Debian's python3-grpc-tools) to create the stubs from protos/.
"""
import os
import sys

_generated = os.path.join(os.path.dirname(__file__), "_generated")
if not os.path.isdir(os.path.join(_generated, "videomatch")):
    raise ImportError(f"VideoMatch stubs are missing in {_generated}; run clients/python/generate.sh first")
if _generated not in sys.path:
    # The stubs import each other as 'videomatch.v1...', the package path protoc gives them.
    sys.path.insert(0, _generated)

from .client import (MAX_PIXELS, FrameStatus, Matches, PairResult, ResumePoint, StreamEndedError, StreamMove,  # noqa: E402
                     Transform, VideoMatchClient, describe_error, image_message, prepare_image, to_own_pixels)

__all__ = ["VideoMatchClient", "Matches", "PairResult", "Transform", "FrameStatus", "image_message", "prepare_image",
           "to_own_pixels", "describe_error", "MAX_PIXELS", "ResumePoint", "StreamMove", "StreamEndedError"]
