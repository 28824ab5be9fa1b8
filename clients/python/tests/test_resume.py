"""A Python stream that survives its server: two server processes behind one client, the serving one stopped
mid-stream (needs VIDEOMATCH_SERVER_DLL, the built server, which test.sh sets)."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import grpc
import numpy as np

from scenes import crop, texture
from videomatch_client import PairResult, ResumePoint, StreamEndedError, VideoMatchClient
from videomatch_client._generated import videomatch_pb2 as pb

SERVER_DLL = os.environ.get("VIDEOMATCH_SERVER_DLL", "")
SETTINGS = ["--Inference:EmbeddedWidth=160", "--Inference:EmbeddedHeight=128", "--Inference:WarmUp=false", "--Metrics:Url="]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The built server as a process on a port, ready when grpc.health.v1 answers SERVING."""

    def __init__(self, port: int, *settings: str):
        self.port = port
        self.log: "list[str]" = []
        self.process = subprocess.Popen(["dotnet", SERVER_DLL, *SETTINGS, *settings, "--urls", f"http://127.0.0.1:{port}"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=lambda: [self.log.append(line) for line in self.process.stdout], daemon=True).start()
        deadline = time.monotonic() + 60
        with VideoMatchClient(f"127.0.0.1:{port}") as probe:
            try:
                # Connected first: calls failing at once would keep gRPC's connection attempt from finishing.
                grpc.channel_ready_future(probe._channel).result(timeout=60)
            except grpc.FutureTimeoutError:
                pass
            while True:
                try:
                    probe.model_info(timeout=2)  # UNAVAILABLE until the model is loaded
                    return
                except grpc.RpcError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server on {port} did not start: {''.join(self.log[-20:])}")
                time.sleep(0.05)

    def streams(self) -> int:
        text = "".join(self.log)
        return len(re.findall(r"Stream camera from \S+ started", text)) - len(re.findall(r"Stream camera ended", text))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self.process.stdout.close()


def frames(picture, gate: "threading.Event | None", count: int = 16):
    for i in range(count):
        if gate is not None and i == count // 2:
            gate.wait(timeout=60)
        if gate is not None and i >= count // 2:
            time.sleep(0.02)  # frames keep flowing while the server stops, so some are in flight and sent again
        yield crop(picture, 20 + 2 * i, 10 + i, 160, 128)


def start_and_wait(run, answered) -> threading.Thread:
    """Runs a stream on a thread until its first half (before the gate) is answered."""
    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while len(answered) < 8 and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.02)
    return worker


def describe(results):
    return [(r.sequence0, r.sequence1, r.new_keyframe, len(r.matches), r.matches.scores.tobytes(), r.matches.keypoints1.tobytes(),
             tuple(r.matches.track_ids)) if isinstance(r, PairResult) else (r.sequence, r.code) for r in results]


@unittest.skipUnless(SERVER_DLL and os.path.exists(SERVER_DLL), "needs VIDEOMATCH_SERVER_DLL (the built server; test.sh sets it)")
class ResumeTest(unittest.TestCase):
    def setUp(self):
        self.picture = texture(300, 400, seed=7)
        self.servers = []

    def tearDown(self):
        for server in self.servers:
            server.kill()

    def test_server_stopped_mid_stream_the_stream_goes_on_as_on_one_server(self):
        ports = [free_port(), free_port()]
        self.servers = [Server(port) for port in ports]
        moves = []
        gate = threading.Event()
        answered = []
        with VideoMatchClient(",".join(f"127.0.0.1:{p}" for p in ports)) as client:
            def run():
                for result in client.stream(frames(self.picture, gate), threshold=0.2, name="camera", track_ids=True,
                                            keyframes=True, rekey_min_inliers=60, resume=True, on_move=moves.append):
                    answered.append(result)

            worker = start_and_wait(run, answered)
            self.assertEqual(8, len(answered), "the first half answered")
            serving = next(s for s in self.servers if s.streams() > 0)
            gate.set()
            self.assertEqual(0, serving.stop())
            worker.join(timeout=120)
            self.assertFalse(worker.is_alive())

            survivor = next(s for s in self.servers if s is not serving)
        with VideoMatchClient(f"127.0.0.1:{survivor.port}") as single:
            expected = list(single.stream(frames(self.picture, None), threshold=0.2, name="camera", track_ids=True,
                                          keyframes=True, rekey_min_inliers=60))
        self.assertEqual(16, len(answered))
        self.assertEqual(describe(expected), describe(answered))
        self.assertEqual(1, len(moves))
        self.assertEqual("UNAVAILABLE", moves[0].cause)
        self.assertEqual(7, moves[0].last_answered)

    def test_drain_time_runs_out_the_frames_it_dropped_are_matched_on_the_next_server(self):
        # A drain of 0 s: at SIGTERM every pair not matched yet is answered DROPPED with resend_elsewhere; the client
        # hands none of those on and sends those frames again where the stream resumes.
        ports = [free_port(), free_port()]
        first = Server(ports[0], "--Streaming:ShutdownDrainSeconds=0", "--Batching:MaxBatchSize=1")
        self.servers = [first]
        answered, moves = [], []
        # The second address has no server yet: the stream starts on the first, and moves once the second is up.
        with VideoMatchClient(",".join(f"127.0.0.1:{p}" for p in ports)) as client:
            def run():
                for result in client.stream(frames(self.picture, None, count=24), threshold=0.2, name="camera", track_ids=True,
                                            resume=True, max_attempts=40, resume_deadline=120, on_move=moves.append):
                    answered.append(result)

            worker = threading.Thread(target=run)
            worker.start()
            deadline = time.monotonic() + 60
            while len(answered) < 6 and time.monotonic() < deadline and worker.is_alive():
                time.sleep(0.01)
            self.assertEqual(0, first.stop())
            self.servers.append(Server(ports[1]))
            worker.join(timeout=120)
            self.assertFalse(worker.is_alive())
        ended = re.search(r"Stream camera ended after .*?, (\d+) dropped", "".join(first.log))
        self.assertIsNotNone(ended, "".join(first.log[-20:]))
        self.assertGreater(int(ended.group(1)), 0, f"the drain dropped no pair, so nothing was to send again: {ended.group(0)}")
        with VideoMatchClient(f"127.0.0.1:{ports[1]}") as single:
            expected = list(single.stream(frames(self.picture, None, count=24), threshold=0.2, name="camera", track_ids=True))
        self.assertEqual(24, len(answered))
        self.assertEqual(describe(expected), describe(answered))
        self.assertEqual(1, len(moves))

    def test_server_hangs_mid_stream_keepalive_pings_notice_and_the_stream_goes_on(self):
        # SIGSTOP: the connection stays open and nothing answers (a frozen pod, a node gone without a FIN); only the
        # client's HTTP/2 pings notice (1 s here, 10 s by default).
        ports = [free_port(), free_port()]
        self.servers = [Server(port) for port in ports]
        moves, answered = [], []
        gate = threading.Event()
        with VideoMatchClient(",".join(f"127.0.0.1:{p}" for p in ports), keepalive=1, keepalive_timeout=1) as client:
            def run():
                for result in client.stream(frames(self.picture, gate), threshold=0.2, name="camera", track_ids=True,
                                            resume=True, on_move=lambda move: moves.append((move, time.monotonic()))):
                    answered.append(result)

            worker = start_and_wait(run, answered)
            self.assertEqual(8, len(answered), "the first half answered")
            serving = next(s for s in self.servers if s.streams() > 0)
            serving.process.send_signal(signal.SIGSTOP)
            hung = time.monotonic()
            gate.set()
            worker.join(timeout=120)
            self.assertFalse(worker.is_alive())
            survivor = next(s for s in self.servers if s is not serving)
        with VideoMatchClient(f"127.0.0.1:{survivor.port}") as single:
            expected = list(single.stream(frames(self.picture, None), threshold=0.2, name="camera", track_ids=True))
        self.assertEqual(describe(expected), describe(answered))
        self.assertEqual(1, len(moves))
        print(f"moved {moves[0][1] - hung:.1f} s after the server hung: {moves[0][0].cause} {moves[0][0].details}", file=sys.stderr)
        self.assertLess(moves[0][1] - hung, 10, "1 s without an answer, then 1 s for the ping's")

    def test_no_server_to_move_to_the_error_names_the_last_frame_answered(self):
        port = free_port()
        self.servers = [Server(port)]
        gate = threading.Event()
        answered = []
        errors = []
        with VideoMatchClient(f"127.0.0.1:{port}") as client:
            def run():
                try:
                    for result in client.stream(frames(self.picture, gate), name="camera", resume=True, max_attempts=2,
                                                resume_deadline=5):
                        answered.append(result)
                except StreamEndedError as error:
                    errors.append(error)

            worker = start_and_wait(run, answered)
            gate.set()
            self.assertEqual(0, self.servers[0].stop())
            worker.join(timeout=60)
        self.assertEqual(1, len(errors), "the stream ended with an error")
        self.assertGreaterEqual(errors[0].last_answered, 7)
        self.assertIn(f"the last frame answered was {errors[0].last_answered}", str(errors[0]))

    def test_resume_point_before_any_usable_answer_says_so(self):
        point = ResumePoint(keyframes=False)
        point.sent(pb.Frame(sequence=3))
        point.answered(pb.StreamResponse(status=pb.FrameStatus(sequence=3, code=pb.FRAME_STATUS_CODE_INVALID)))
        self.assertFalse(point.can_resume)
        with self.assertRaisesRegex(RuntimeError, "the last answered was 3"):
            point.build(pb.StreamConfig())


if __name__ == "__main__":
    unittest.main()
