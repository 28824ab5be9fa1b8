"""A small, typed wrapper over the generated VideoMatch stubs.

Frames are numpy arrays (H×W gray, H×W×3 RGB, H×W×4 RGBA, all uint8), encoded JPEG/PNG bytes, image file paths
or PIL images; matches come back as numpy arrays in each image's original pixel coordinates.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
import time
from typing import Callable, Iterable, Iterator, Optional, Union

import grpc
import numpy as np
from google.protobuf import wrappers_pb2
from ._generated import videomatch_pb2 as pb
from ._generated import videomatch_pb2_grpc as pb_grpc

ImageLike = Union[np.ndarray, bytes, bytearray, str, "os.PathLike[str]", "PIL.Image.Image", "pb.Image"]

#: The server's default Limits:MaxImagePixels (4096×2160): larger images are downscaled before sending.
MAX_PIXELS = 4096 * 2160

_ACCEPTED = ("a numpy uint8 array (H×W gray, H×W×3 RGB, H×W×4 RGBA), JPEG or PNG bytes, an image file path, "
             "or a PIL image")


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


def describe_error(error: BaseException, address: str = "") -> str:
    """One line for a failed call or a bad image, for scripts that print errors rather than tracebacks."""
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        code, details = error.code(), (error.details() or "").rstrip(". ")
        where = f" at {address}" if address else ""
        if code == grpc.StatusCode.UNAVAILABLE and details.lower().startswith("failed to connect"):
            return f"could not reach the server{where}: {details}. Is it running?"
        if code == grpc.StatusCode.UNAVAILABLE:
            return f"the server{where} is running but not serving: {details}"
        return f"the server{where} answered {code.name}: {details}"
    return str(error)


def image_message(image: ImageLike) -> "pb.Image":
    """Builds an Image message from a numpy array (gray, RGB or RGBA uint8), JPEG/PNG bytes, an image file path
    or a PIL image. Use :func:`prepare_image` to also downscale images over the server's pixel limit."""
    return prepare_image(image, max_pixels=None)[0]


def prepare_image(image: ImageLike, max_pixels: Optional[int] = MAX_PIXELS) -> "tuple[pb.Image, float, float]":
    """As :func:`image_message`, downscaling (aspect kept) an image of more than ``max_pixels`` pixels (None: never).
    Returns ``(message, scale_x, scale_y)``: own pixels per sent pixel (1 when sent as is), for
    :func:`to_own_pixels`. File paths of formats other than JPEG and PNG, and downscaling, need Pillow."""
    if isinstance(image, pb.Image):
        return image, 1.0, 1.0
    if isinstance(image, (str, os.PathLike)):
        return _prepare_file(os.fspath(image), max_pixels)
    if isinstance(image, (bytes, bytearray)):
        return _prepare_encoded(bytes(image), "encoded image", max_pixels)
    if _is_pil(image):
        return _prepare_array(_pil_array(image), max_pixels)
    if isinstance(image, np.ndarray):
        return _prepare_array(image, max_pixels)
    raise TypeError(f"an image must be {_ACCEPTED}; got {type(image).__name__}")


def to_own_pixels(points: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """Keypoints of a sent (downscaled) image, (N, 2), in the image's own pixels (pixel centres at whole numbers)."""
    if scale_x == 1.0 and scale_y == 1.0:
        return points
    return ((points + 0.5) * np.array([scale_x, scale_y], dtype=np.float64) - 0.5).astype(np.float32)


def _own_transform(matrix: np.ndarray, scale0: "tuple[float, float]", scale1: "tuple[float, float]") -> np.ndarray:
    """A sent-image0 → sent-image1 transform in the images' own pixels: S1·M·S0⁻¹ (Si: image i's sent-to-own map)."""
    def sent_to_own(sx: float, sy: float) -> np.ndarray:
        return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], dtype=np.float64)
    own = sent_to_own(*scale1) @ matrix @ np.linalg.inv(sent_to_own(*scale0))
    return own / own[2, 2]


def _prepare_file(path: str, max_pixels: Optional[int]) -> "tuple[pb.Image, float, float]":
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; give an image file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    with open(path, "rb") as file:
        data = file.read()
    if not data:
        raise ValueError(f"{path} is empty (0 bytes)")
    return _prepare_encoded(data, path, max_pixels)


def _prepare_encoded(data: bytes, name: str, max_pixels: Optional[int]) -> "tuple[pb.Image, float, float]":
    encoding = (pb.IMAGE_ENCODING_JPEG if data[:2] == b"\xff\xd8" else
                pb.IMAGE_ENCODING_PNG if data[:4] == b"\x89PNG" else None)
    pil = _pil()
    if encoding is not None and (max_pixels is None or pil is None):
        # Sent as is: the server decodes it (and names its pixel limit if it is over it).
        return pb.Image(encoded=pb.EncodedImage(encoding=encoding, data=data)), 1.0, 1.0
    if pil is None:
        raise ValueError(f"{name} is neither JPEG nor PNG (by its first bytes); install Pillow (apt install python3-pil, "
                         "or pip install pillow) to send other formats, or convert it")
    import io
    try:
        opened = pil.open(io.BytesIO(data))
        size = opened.size
    except Exception:  # noqa: BLE001 - Pillow raises several types for a file it cannot read
        raise ValueError(f"{name} is not an image: neither JPEG nor PNG, nor another format Pillow reads") from None
    if encoding is not None and size[0] * size[1] <= max_pixels:
        return pb.Image(encoded=pb.EncodedImage(encoding=encoding, data=data)), 1.0, 1.0
    return _prepare_array(_pil_array(opened), max_pixels, jpeg=encoding == pb.IMAGE_ENCODING_JPEG)


def _prepare_array(image: np.ndarray, max_pixels: Optional[int], jpeg: bool = False) -> "tuple[pb.Image, float, float]":
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8:
        hint = " (scale floats in [0, 1] with (array * 255).astype(np.uint8))" if array.dtype.kind == "f" else ""
        raise ValueError(f"image arrays must be uint8, got {array.dtype}{hint}; an image is {_ACCEPTED}")
    if array.ndim == 2:
        pixel_format = pb.PIXEL_FORMAT_GRAY8
    elif array.ndim == 3 and array.shape[2] == 3:
        pixel_format = pb.PIXEL_FORMAT_RGB24
    elif array.ndim == 3 and array.shape[2] == 4:
        pixel_format = pb.PIXEL_FORMAT_RGBA32
    else:
        raise ValueError(f"image arrays must be H×W, H×W×3 or H×W×4, got shape {array.shape}")
    height, width = array.shape[:2]
    if max_pixels is not None and width * height > max_pixels:
        pil = _pil()
        if pil is None:
            raise ValueError(f"a {width}×{height} image is over the server's limit of {max_pixels} pixels; install "
                             "Pillow (apt install python3-pil, or pip install pillow) to have it downscaled, or "
                             "downscale it first")
        factor = (max_pixels / (width * height)) ** 0.5
        sent = (max(1, int(width * factor)), max(1, int(height * factor)))
        smaller = pil.fromarray(array).resize(sent, pil.BILINEAR)
        # Compressed: raw pixels at the limit (26 MB in RGB) are over the server's message limit. JPEG for photos
        # that were JPEG already, PNG (exact) for the rest.
        import io
        buffer = io.BytesIO()
        if jpeg and smaller.mode != "RGBA":
            smaller.save(buffer, format="JPEG", quality=95)
        else:
            smaller.save(buffer, format="PNG", compress_level=1)
        encoding = pb.IMAGE_ENCODING_JPEG if jpeg and smaller.mode != "RGBA" else pb.IMAGE_ENCODING_PNG
        return (pb.Image(encoded=pb.EncodedImage(encoding=encoding, data=buffer.getvalue())),
                width / sent[0], height / sent[1])
    return pb.Image(raw=pb.RawImage(format=pixel_format, width=width, height=height, data=array.tobytes())), 1.0, 1.0


def _pil():
    try:
        from PIL import Image
        return Image
    except ImportError:
        return None


def _is_pil(image: object) -> bool:
    pil = _pil()
    return pil is not None and isinstance(image, pil.Image)


def _pil_array(image: "PIL.Image.Image") -> np.ndarray:
    mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGBA" if "A" in image.mode else "RGB"
    return np.asarray(image.convert(mode))


def _target(address: str) -> str:
    """A gRPC target: several "ip:port" pairs become one ipv4: (or ipv6:) list; anything else stays as it is."""
    if "," not in address or ":///" in address:
        return address
    parts = [part.strip() for part in address.split(",") if part.strip()]
    return ("ipv6:" if any(part.startswith("[") for part in parts) else "ipv4:") + ",".join(parts)


def _put(into: "queue.Queue", item: object, stopped: threading.Event) -> bool:
    """Puts ``item`` into a bounded queue, waiting for room; False once ``stopped`` is set (the stream ended)."""
    while not stopped.is_set():
        try:
            into.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _result(response: "pb.StreamResponse") -> Union[PairResult, FrameStatus]:
    if response.HasField("pair"):
        pair = response.pair
        transform = Transform.from_message(pair.transform) if pair.HasField("transform") else None
        return PairResult(pair.sequence0, pair.sequence1, Matches.from_message(pair.matches), pair.timings, transform,
                          pair.new_keyframe)
    status = response.status
    return FrameStatus(status.sequence, pb.FrameStatusCode.Name(status.code).replace("FRAME_STATUS_CODE_", ""), status.message)


class _Stopping(grpc.RpcError):
    """A call that ended after its server said it is stopping (FrameStatus.resend_elsewhere): a move, like UNAVAILABLE."""

    def __init__(self, details: str):
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self._details


def _movable(error: grpc.RpcError) -> bool:
    """The server went away or is draining (a move can go on elsewhere)."""
    if not hasattr(error, "code"):
        return False
    details = (error.details() or "").lower()
    return error.code() == grpc.StatusCode.UNAVAILABLE or (
        error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) and ("closed" in details or "reset" in details))


class StreamEndedError(Exception):
    """A resuming stream that could not go on; ``last_answered`` is the sequence number of the last frame answered."""

    def __init__(self, message: str, last_answered: Optional[int], code: str):
        super().__init__(message)
        self.last_answered = last_answered
        self.code = code


def _ended(point: "ResumePoint", why: str, error: grpc.RpcError) -> StreamEndedError:
    last = point.last_answered
    return StreamEndedError(f"The stream could not go on: {why} (the last frame answered was "
                            f"{'none' if last is None else last}; send the frames after it to a new stream). "
                            f"{error.code().name}: {error.details()}", last, error.code().name)


@dataclass
class StreamMove:
    """A stream that moved to another server: why, after which frame, how many frames it sent again."""

    cause: str
    details: str
    last_answered: Optional[int]
    resent: int
    attempts: int


class ResumePoint:
    """What a client keeps of a stream to resume it elsewhere (``StreamConfig.resume``): the frame the next frame
    pairs with, the last matched pair (track ids), the largest id, and the frames sent but not answered yet.
    Feed it every frame sent and every response read, in order."""

    def __init__(self, keyframes: bool):
        self._keyframes = keyframes
        self.unanswered: "list[pb.Frame]" = []
        self._reference: Optional["pb.Frame"] = None
        self._last_pair: Optional["pb.PairMatches"] = None
        self._largest_id = 0
        self.last_answered: Optional[int] = None

    @property
    def can_resume(self) -> bool:
        return self._reference is not None

    def sent(self, frame: "pb.Frame") -> None:
        self.unanswered.append(frame)

    def answered(self, response: "pb.StreamResponse") -> None:
        sequence = response.pair.sequence1 if response.HasField("pair") else response.status.sequence
        if not self.unanswered or self.unanswered[0].sequence != sequence:
            raise RuntimeError(f"a response for frame {sequence} while frame "
                               f"{self.unanswered[0].sequence if self.unanswered else 'none'} waits for its answer")
        frame = self.unanswered.pop(0)
        self.last_answered = sequence
        usable = response.HasField("pair") or response.status.code != pb.FRAME_STATUS_CODE_INVALID
        new_key = response.HasField("pair") and response.pair.new_keyframe
        if usable and (not self._keyframes or self._reference is None or new_key):
            self._reference = frame
        if response.HasField("pair"):
            ids = response.pair.matches.track_ids
            if ids:
                self._largest_id = max(self._largest_id, max(ids))
            if ids or response.pair.matches.count == 0:
                self._last_pair = response.pair

    def build(self, config: "pb.StreamConfig") -> "pb.StreamResume":
        if self._reference is None:
            raise RuntimeError(f"nothing to resume from: no usable frame was answered (the last answered was "
                               f"{'none' if self.last_answered is None else self.last_answered})")
        resume = pb.StreamResume(reference=self._reference)
        if config.track_ids and self._last_pair is not None:
            resume.tracks.last_pair.CopyFrom(self._last_pair)
            resume.tracks.next_track_id = self._largest_id + 1
        return resume


class VideoMatchClient:
    """A connection to a VideoMatch server; thread-safe, reuse it."""

    def __init__(self, address: str = "127.0.0.1:50051", api_key: Optional[str] = None,
                 max_message_bytes: int = 64 * 1024 * 1024, model: str = "", keepalive: float = 10.0,
                 keepalive_timeout: float = 10.0):
        """``model``: which of the server's models every call uses (``list_models`` names them); "" for its default.
        ``address``: "host:port", several IP:port pairs separated by commas (balanced round-robin), or a gRPC target
        such as "dns:///name:port" (every address the name resolves to, round-robin).
        ``keepalive``: seconds between HTTP/2 pings while calls are open (0: none), and ``keepalive_timeout`` the wait
        for a ping's answer: a server that hangs without closing its connections (a frozen pod, a node gone) is
        noticed, and a resuming stream moves on."""
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        if keepalive > 0:
            options += [("grpc.keepalive_time_ms", int(keepalive * 1000)), ("grpc.keepalive_timeout_ms", int(keepalive_timeout * 1000)),
                        # Pings while a stream only sends (a frozen server answers nothing, so no data comes back).
                        ("grpc.http2.max_pings_without_data", 0)]
        target = _target(address)
        if target != address or address.startswith(("dns:", "ipv4:", "ipv6:")):
            # Several servers: calls balanced round-robin, each stream on one; one that goes away is skipped.
            options.append(("grpc.lb_policy_name", "round_robin"))
            if target != address:
                # An address list is no host name: name the first as the :authority (servers refuse the list).
                options.append(("grpc.default_authority", address.split(",")[0].strip()))
        self._channel = grpc.insecure_channel(target, options=options)
        self._stub = pb_grpc.VideoMatcherStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        self._model = model

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "VideoMatchClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def model_info(self, timeout: float = 30) -> "pb.ModelInfo":
        return self._stub.GetModelInfo(pb.GetModelInfoRequest(model=self._model), timeout=timeout, metadata=self._metadata)

    def list_models(self, timeout: float = 30) -> "pb.ListModelsResponse":
        """Every model the server serves (``models``, each with ``name`` and ``serving``) and its ``default_model``."""
        return self._stub.ListModels(pb.ListModelsRequest(), timeout=timeout, metadata=self._metadata)

    def match_pair(self, image0: ImageLike, image1: ImageLike, threshold: Optional[float] = None,
                   max_matches: int = 0, timeout: float = 60, estimate: Optional[str] = None,
                   inlier_threshold_px: float = 0, letterbox: bool = False,
                   max_pixels: Optional[int] = MAX_PIXELS) -> Matches:
        """Matches two images once (like the Hugging Face pipeline). Images are numpy arrays, JPEG/PNG bytes, file
        paths or PIL images; one over ``max_pixels`` (default: the server's 4096×2160 limit; None: never) is
        downscaled here, aspect kept, and its keypoints come back in its own pixels. Raises grpc.RpcError on bad
        input. With ``estimate`` ("homography", "affine" or "similarity") use :meth:`match_pair_with_transform`,
        which also returns the fitted transform; ``letterbox`` keeps each image's aspect ratio in the model input."""
        return self.match_pair_with_transform(image0, image1, threshold, max_matches, timeout, estimate,
                                              inlier_threshold_px, letterbox, max_pixels)[0]

    def match_pair_with_transform(self, image0: ImageLike, image1: ImageLike, threshold: Optional[float] = None,
                                  max_matches: int = 0, timeout: float = 60, estimate: Optional[str] = None,
                                  inlier_threshold_px: float = 0, letterbox: bool = False,
                                  max_pixels: Optional[int] = MAX_PIXELS) -> "tuple[Matches, Optional[Transform]]":
        """As :meth:`match_pair`, returning ``(matches, transform)``; transform is None unless ``estimate`` is set."""
        message0, sx0, sy0 = prepare_image(image0, max_pixels)
        message1, sx1, sy1 = prepare_image(image1, max_pixels)
        request = pb.MatchPairRequest(image0=message0, image1=message1, max_matches=max_matches, model=self._model,
                                      estimate=_estimate(estimate), inlier_threshold_px=inlier_threshold_px,
                                      letterbox=letterbox)
        if threshold is not None:
            request.match_threshold.CopyFrom(wrappers_pb2.FloatValue(value=threshold))
        response = self._stub.MatchPair(request, timeout=timeout, metadata=self._metadata)
        transform = Transform.from_message(response.transform) if response.HasField("transform") else None
        matches = Matches.from_message(response.matches)
        matches.keypoints0 = to_own_pixels(matches.keypoints0, sx0, sy0)
        matches.keypoints1 = to_own_pixels(matches.keypoints1, sx1, sy1)
        if transform is not None and transform.matrix is not None:
            transform.matrix = _own_transform(transform.matrix, (sx0, sy0), (sx1, sy1))
        return matches, transform

    def stream(self, frames: Iterable[ImageLike], threshold: Optional[float] = None, max_matches: int = 0,
               name: str = "", first_sequence: int = 0, estimate: Optional[str] = None,
               inlier_threshold_px: float = 0, keyframes: bool = False, rekey_min_inliers: int = 0,
               track_ids: bool = False, track_radius_px: float = 0, letterbox: bool = False,
               timeout: Optional[float] = None, resume: bool = False, max_attempts: int = 6,
               resume_deadline: float = 30.0, max_unanswered: int = 16,
               on_move: Optional[Callable[["StreamMove"], None]] = None) -> Iterator[Union[PairResult, FrameStatus]]:
        """Streams frames and yields one result per frame, in order: a PairResult for (previous, this) or a
        FrameStatus. Frames are numbered from ``first_sequence``; they are sent from a background thread while
        results are read, so the server's batching sees a steady flow. ``estimate`` ("homography", "affine" or
        "similarity") has the server fit that transform to each pair (``PairResult.transform``). ``keyframes``
        matches each frame against a keyframe (``PairResult.sequence0``), re-keyed below ``rekey_min_inliers``;
        ``track_ids`` gives each match an id that persists along its track (``Matches.track_ids``);
        ``letterbox`` keeps each frame's aspect ratio in the model input.

        If ``frames`` raises (or yields something that is not a frame), the frames before it are answered and
        then the same exception is raised here, in the caller.

        With ``resume``, the stream survives its server: when it stops (UNAVAILABLE, its drain, a closed connection)
        the client reconnects (at most ``max_attempts`` connections and ``resume_deadline`` seconds per move, with
        backoff), resumes the stream there (``StreamConfig.resume``), sends again the frames not yet answered (at most
        ``max_unanswered`` are kept), and goes on: one result per frame, in order, no duplicate, no gap, as one
        uninterrupted server answers them. ``on_move`` is called with a :class:`StreamMove` after each move; when the
        stream cannot go on, the error names the last frame answered."""
        config = pb.StreamConfig(max_matches=max_matches, stream_name=name, estimate=_estimate(estimate), model=self._model,
                                 inlier_threshold_px=inlier_threshold_px, keyframes=keyframes,
                                 rekey_min_inliers=rekey_min_inliers, track_ids=track_ids,
                                 track_radius_px=track_radius_px, letterbox=letterbox)
        if threshold is not None:
            config.match_threshold.CopyFrom(wrappers_pb2.FloatValue(value=threshold))
        if resume:
            yield from self._stream_resuming(frames, config, first_sequence, name, timeout, max_attempts,
                                             resume_deadline, max_unanswered, on_move)
            return
        # Bounded: the producer stays a few frames ahead of what gRPC has taken.
        requests: "queue.Queue[Optional[pb.StreamRequest]]" = queue.Queue(maxsize=8)
        stopped = threading.Event()
        failure: "list[BaseException]" = []

        def put(item: Optional["pb.StreamRequest"]) -> bool:
            return _put(requests, item, stopped)

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
                yield _result(response)
            producer.join()
            if failure:
                raise failure[0]
        finally:
            stopped.set()
            call.cancel()

    def _stream_resuming(self, frames: Iterable[ImageLike], config: "pb.StreamConfig", first_sequence: int, name: str,
                         timeout: Optional[float], max_attempts: int, resume_deadline: float, max_unanswered: int,
                         on_move: Optional[Callable[["StreamMove"], None]]) -> Iterator[Union[PairResult, FrameStatus]]:
        """:meth:`stream` with ``resume``: each attempt is one MatchStream call; a move starts the next."""
        point = ResumePoint(config.keyframes)
        lock = threading.Lock()  # the point, and the taking of frames from the queue
        incoming: "queue.Queue[object]" = queue.Queue(maxsize=1)
        room = threading.Semaphore(max_unanswered)
        stopped = threading.Event()
        failure: "list[BaseException]" = []
        end = object()
        ended = [False]

        def put(item: object) -> bool:
            return _put(incoming, item, stopped)

        def produce() -> None:
            try:
                for index, frame in enumerate(frames):
                    message = pb.Frame(sequence=first_sequence + index, image=image_message(frame))
                    while not room.acquire(timeout=0.1):
                        if stopped.is_set():
                            return
                    if not put(message):
                        return
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread, never lost
                failure.append(error)
            finally:
                put(end)

        def requests(alive: threading.Event) -> Iterator["pb.StreamRequest"]:
            with lock:
                first = pb.StreamConfig()
                first.CopyFrom(config)
                if point.can_resume:
                    first.resume.CopyFrom(point.build(config))
                again = list(point.unanswered)
            yield pb.StreamRequest(config=first)
            for frame in again:
                yield pb.StreamRequest(frame=frame)
            while alive.is_set():
                with lock:
                    # Taken under the lock, and recorded before it is sent: a later attempt sends it again.
                    if not alive.is_set() or ended[0]:
                        return
                    try:
                        item = incoming.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    if item is end:
                        ended[0] = True
                        return
                    point.sent(item)
                yield pb.StreamRequest(frame=item)

        producer = threading.Thread(target=produce, daemon=True, name=f"videomatch-stream-{name or 'frames'}")
        producer.start()
        cause: Optional[grpc.RpcError] = None
        moved_after: Optional[int] = None
        move_started = 0.0
        failures = 0
        try:
            while True:
                alive = threading.Event()
                alive.set()
                with lock:
                    resent = len(point.unanswered)
                call = self._stub.MatchStream(requests(alive), timeout=timeout, metadata=self._metadata)
                # The server is stopping and could not match this frame in its drain time: from it on, every frame of
                # this call goes again to the next server, and none of their answers here is handed on.
                stopping: Optional[str] = None
                try:
                    for response in call:
                        if stopping is not None or (response.WhichOneof("result") == "status" and response.status.resend_elsewhere):
                            stopping = response.status.message if stopping is None else stopping
                            continue
                        with lock:
                            point.answered(response)
                        room.release()
                        if cause is not None:
                            if on_move is not None:
                                on_move(StreamMove(cause.code().name, cause.details() or "", moved_after, resent, failures + 1))
                            cause, failures = None, 0
                        yield _result(response)
                    if stopping is not None:
                        # The call ended (its drain done) with frames to send again: a move, as UNAVAILABLE is.
                        raise _Stopping(stopping)
                    break
                except grpc.RpcError as error:
                    if not _movable(error):
                        if cause is not None:
                            raise _ended(point, "the server it moved to refused it", error) from error
                        raise
                    alive.clear()
                    call.cancel()
                    with lock:  # the old attempt takes no more frames
                        if cause is None:
                            moved_after, move_started, failures = point.last_answered, time.monotonic(), 0
                        else:
                            failures += 1
                    cause = error if cause is None else cause  # what ended the stream on its server, not the failed connections since
                    elapsed = time.monotonic() - move_started
                    if failures >= max_attempts or elapsed >= resume_deadline:
                        raise _ended(point, f"{failures + 1} connections over {elapsed:.1f} s found no server to resume it on",
                                     error) from error
                    time.sleep(min(2.0, 0.1 * (2 ** failures)))
                    # Then wait for a server to connect to: calls that fail at once while gRPC connects keep its
                    # connection attempt from finishing (a server up in 0.5 s was reached only after 10 s or more).
                    try:
                        grpc.channel_ready_future(self._channel).result(timeout=max(0.0, resume_deadline - (time.monotonic() - move_started)))
                    except grpc.FutureTimeoutError:
                        pass  # the next attempt fails and says why
            producer.join()
            if failure:
                raise failure[0]
        finally:
            stopped.set()
