"""A small, typed wrapper over the generated VideoMatch stubs.

Frames are numpy arrays (H×W gray, H×W×3 RGB, H×W×4 RGBA, all uint8) or encoded JPEG/PNG bytes; matches come
back as numpy arrays in each image's original pixel coordinates.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Union

import grpc
import numpy as np
from google.protobuf import wrappers_pb2
from videomatch.v1 import videomatch_pb2 as pb
from videomatch.v1 import videomatch_pb2_grpc as pb_grpc

ImageLike = Union[np.ndarray, bytes, bytearray, "pb.Image"]


@dataclass
class Matches:
    """Matched keypoints, best score first: keypoints0[i] in image 0 matches keypoints1[i] in image 1."""

    keypoints0: np.ndarray  # (N, 2) float32, x then y
    keypoints1: np.ndarray  # (N, 2) float32
    scores: np.ndarray  # (N,) float32
    track_ids: np.ndarray  # (N,) uint64 when the stream asked for track ids, else empty

    @staticmethod
    def from_message(message: "pb.Matches") -> "Matches":
        return Matches(
            np.asarray(message.keypoints0, dtype=np.float32).reshape(-1, 2),
            np.asarray(message.keypoints1, dtype=np.float32).reshape(-1, 2),
            np.asarray(message.scores, dtype=np.float32),
            np.asarray(message.track_ids, dtype=np.uint64),
        )

    def __len__(self) -> int:
        return len(self.scores)


ESTIMATES = {
    None: pb.TRANSFORM_MODEL_UNSPECIFIED,
    "homography": pb.TRANSFORM_MODEL_HOMOGRAPHY,
    "affine": pb.TRANSFORM_MODEL_AFFINE,
    "similarity": pb.TRANSFORM_MODEL_SIMILARITY,
}


@dataclass
class Transform:
    """A robust transform fitted on the server: matrix maps frame-0 pixels to frame 1 (3×3, None if not found)."""

    matrix: Optional[np.ndarray]  # (3, 3) float64, or None with the reason in failure
    inliers: int
    inlier_mask: np.ndarray  # (N,) bool, one per match
    failure: str

    @staticmethod
    def from_message(message: "pb.Transform") -> "Transform":
        matrix = np.asarray(message.matrix, dtype=np.float64).reshape(3, 3) if len(message.matrix) == 9 else None
        return Transform(matrix, message.inliers, np.frombuffer(message.inlier_mask, dtype=np.uint8).astype(bool), message.failure)


@dataclass
class PairResult:
    """The matches of frames (sequence0, sequence1) of a stream, and their transform when the stream asked for one."""

    sequence0: int
    sequence1: int
    matches: Matches
    timings: "pb.Timings"
    transform: Optional[Transform] = None
    new_keyframe: bool = False  # keyframe mode: frame sequence1 is the reference for the frames after it


def _estimate(estimate: Optional[str]) -> int:
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be one of homography, affine, similarity or None; got {estimate!r}")
    return ESTIMATES[estimate]


@dataclass
class FrameStatus:
    """Why a frame has no pair: FIRST_FRAME, INVALID (with the reason), DROPPED or FAILED."""

    sequence: int
    code: str
    message: str


def image_message(image: ImageLike) -> "pb.Image":
    """Builds an Image message from a numpy array (gray, RGB or RGBA uint8) or JPEG/PNG bytes."""
    if isinstance(image, pb.Image):
        return image
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
        if data[:2] == b"\xff\xd8":
            encoding = pb.IMAGE_ENCODING_JPEG
        elif data[:4] == b"\x89PNG":
            encoding = pb.IMAGE_ENCODING_PNG
        else:
            raise ValueError("encoded image is neither JPEG nor PNG (by its first bytes)")
        return pb.Image(encoded=pb.EncodedImage(encoding=encoding, data=data))
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 arrays, got {array.dtype}")
    if array.ndim == 2:
        pixel_format = pb.PIXEL_FORMAT_GRAY8
    elif array.ndim == 3 and array.shape[2] == 3:
        pixel_format = pb.PIXEL_FORMAT_RGB24
    elif array.ndim == 3 and array.shape[2] == 4:
        pixel_format = pb.PIXEL_FORMAT_RGBA32
    else:
        raise ValueError(f"frames must be H×W, H×W×3 or H×W×4, got shape {array.shape}")
    height, width = array.shape[:2]
    return pb.Image(raw=pb.RawImage(format=pixel_format, width=width, height=height, data=array.tobytes()))


class VideoMatchClient:
    """A connection to a VideoMatch server; thread-safe, reuse it."""

    def __init__(self, address: str = "127.0.0.1:50051", api_key: Optional[str] = None,
                 max_message_bytes: int = 64 * 1024 * 1024):
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.VideoMatcherStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "VideoMatchClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def model_info(self, timeout: float = 30) -> "pb.ModelInfo":
        return self._stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=timeout, metadata=self._metadata)

    def match_pair(self, image0: ImageLike, image1: ImageLike, threshold: Optional[float] = None,
                   max_matches: int = 0, timeout: float = 60, estimate: Optional[str] = None,
                   inlier_threshold_px: float = 0, letterbox: bool = False) -> Matches:
        """Matches two images once (like the Hugging Face pipeline). Raises grpc.RpcError on bad input.
        With ``estimate`` ("homography", "affine" or "similarity") use :meth:`match_pair_with_transform`, which
        also returns the fitted transform; ``letterbox`` keeps each image's aspect ratio in the model input."""
        return self.match_pair_with_transform(image0, image1, threshold, max_matches, timeout, estimate,
                                              inlier_threshold_px, letterbox)[0]

    def match_pair_with_transform(self, image0: ImageLike, image1: ImageLike, threshold: Optional[float] = None,
                                  max_matches: int = 0, timeout: float = 60, estimate: Optional[str] = None,
                                  inlier_threshold_px: float = 0,
                                  letterbox: bool = False) -> "tuple[Matches, Optional[Transform]]":
        """As :meth:`match_pair`, returning ``(matches, transform)``; transform is None unless ``estimate`` is set."""
        request = pb.MatchPairRequest(image0=image_message(image0), image1=image_message(image1), max_matches=max_matches,
                                      estimate=_estimate(estimate), inlier_threshold_px=inlier_threshold_px,
                                      letterbox=letterbox)
        if threshold is not None:
            request.match_threshold.CopyFrom(wrappers_pb2.FloatValue(value=threshold))
        response = self._stub.MatchPair(request, timeout=timeout, metadata=self._metadata)
        transform = Transform.from_message(response.transform) if response.HasField("transform") else None
        return Matches.from_message(response.matches), transform

    def stream(self, frames: Iterable[ImageLike], threshold: Optional[float] = None, max_matches: int = 0,
               name: str = "", first_sequence: int = 0, estimate: Optional[str] = None,
               inlier_threshold_px: float = 0, keyframes: bool = False, rekey_min_inliers: int = 0,
               track_ids: bool = False, track_radius_px: float = 0, letterbox: bool = False,
               timeout: Optional[float] = None) -> Iterator[Union[PairResult, FrameStatus]]:
        """Streams frames and yields one result per frame, in order: a PairResult for (previous, this) or a
        FrameStatus. Frames are numbered from ``first_sequence``; they are sent from a background thread while
        results are read, so the server's batching sees a steady flow. ``estimate`` ("homography", "affine" or
        "similarity") has the server fit that transform to each pair (``PairResult.transform``). ``keyframes``
        matches each frame against a keyframe (``PairResult.sequence0``), re-keyed below ``rekey_min_inliers``;
        ``track_ids`` gives each match an id that persists along its track (``Matches.track_ids``);
        ``letterbox`` keeps each frame's aspect ratio in the model input.

        If ``frames`` raises (or yields something that is not a frame), the frames before it are answered and
        then the same exception is raised here, in the caller."""
        config = pb.StreamConfig(max_matches=max_matches, stream_name=name, estimate=_estimate(estimate),
                                 inlier_threshold_px=inlier_threshold_px, keyframes=keyframes,
                                 rekey_min_inliers=rekey_min_inliers, track_ids=track_ids,
                                 track_radius_px=track_radius_px, letterbox=letterbox)
        if threshold is not None:
            config.match_threshold.CopyFrom(wrappers_pb2.FloatValue(value=threshold))
        # Bounded: the producer stays a few frames ahead of what gRPC has taken.
        requests: "queue.Queue[Optional[pb.StreamRequest]]" = queue.Queue(maxsize=8)
        stopped = threading.Event()
        failure: "list[BaseException]" = []

        def put(item: Optional["pb.StreamRequest"]) -> bool:
            while not stopped.is_set():
                try:
                    requests.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                if not put(pb.StreamRequest(config=config)):
                    return
                for index, frame in enumerate(frames):
                    message = pb.Frame(sequence=first_sequence + index, image=image_message(frame))
                    if not put(pb.StreamRequest(frame=message)):
                        return
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread, never lost
                failure.append(error)
            finally:
                put(None)

        def request_iterator() -> Iterator["pb.StreamRequest"]:
            while (item := requests.get()) is not None:
                yield item

        producer = threading.Thread(target=produce, daemon=True, name=f"videomatch-stream-{name or 'frames'}")
        producer.start()
        call = self._stub.MatchStream(request_iterator(), timeout=timeout, metadata=self._metadata)
        try:
            for response in call:
                if response.HasField("pair"):
                    pair = response.pair
                    transform = Transform.from_message(pair.transform) if pair.HasField("transform") else None
                    yield PairResult(pair.sequence0, pair.sequence1, Matches.from_message(pair.matches), pair.timings, transform,
                                     pair.new_keyframe)
                else:
                    status = response.status
                    yield FrameStatus(status.sequence, pb.FrameStatusCode.Name(status.code).replace("FRAME_STATUS_CODE_", ""),
                                      status.message)
            producer.join()
            if failure:
                raise failure[0]
        finally:
            stopped.set()
            call.cancel()
