"""Python client for the VideoMatch gRPC server (keypoint matching between video frames).

Install with ``pip install ./clients/python``; the stubs for the contract (protos/) are inside the package.
"""
from .client import (MAX_PIXELS, FrameStatus, Matches, PairResult, ResumePoint, StreamEndedError, StreamMove,
                     Transform, VideoMatchClient, describe_error, image_message, prepare_image, to_own_pixels)

__all__ = ["VideoMatchClient", "Matches", "PairResult", "Transform", "FrameStatus", "image_message", "prepare_image",
           "to_own_pixels", "describe_error", "MAX_PIXELS", "ResumePoint", "StreamMove", "StreamEndedError"]
