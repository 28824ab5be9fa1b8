"""The client as its users install it: pip's build of clients/python (the backend in _backend/), the stubs inside the
package, and which copy of the package the other tests ran against."""
import base64
import csv
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile

import videomatch_client

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_backend():
    spec = importlib.util.spec_from_file_location("videomatch_build", os.path.join(SOURCE, "_backend", "videomatch_build.py"))
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    return backend


class PackageTest(unittest.TestCase):
    def test_the_tests_import_the_installed_package(self):
        where = os.path.dirname(os.path.abspath(videomatch_client.__file__))
        print(f"videomatch_client from {where}", file=sys.stderr)
        if os.environ.get("VIDEOMATCH_CLIENT_INSTALLED") != "1":
            self.skipTest("VIDEOMATCH_CLIENT_INSTALLED is not 1: test.sh installs the package into a virtual environment and sets it")
        self.assertFalse(where.startswith(SOURCE + os.sep), f"the tests imported the source tree ({where}), not the installed package")
        self.assertTrue(os.path.isfile(os.path.join(where, "_generated", "videomatch_pb2.py")))

    def test_stubs_load_with_protobufs_pure_python_runtime_too(self):
        # The builder form loads on every protobuf runtime from 3.20 (cpp, upb, python); python is the strictest here.
        code = ("from videomatch_client._generated import videomatch_pb2 as pb\n"
                "r = pb.StreamRequest(config=pb.StreamConfig(stream_name='cam', resume=pb.StreamResume(tracks=pb.TrackState(next_track_id=7))))\n"
                "back = pb.StreamRequest.FromString(r.SerializeToString())\n"
                "from google.protobuf.internal import api_implementation\n"
                "print(api_implementation.Type(), back.config.stream_name, back.config.resume.tracks.next_track_id)\n")
        env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), ["python", "cam", "7"])

    def test_wheel_holds_the_package_stubs_and_metadata_and_builds_the_same_twice(self):
        backend = load_backend()
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            name = backend.build_wheel(a)
            self.assertEqual(name, "videomatch_client-0.1.0-py3-none-any.whl")
            self.assertEqual(backend.build_wheel(b), name)
            with open(os.path.join(a, name), "rb") as f1, open(os.path.join(b, name), "rb") as f2:
                self.assertEqual(f1.read(), f2.read(), "two builds of the same tree differ")
            with zipfile.ZipFile(os.path.join(a, name)) as wheel:
                names = set(wheel.namelist())
                for needed in ("videomatch_client/__init__.py", "videomatch_client/client.py", "videomatch_client/py.typed",
                               "videomatch_client/_generated/videomatch_pb2.py", "videomatch_client/_generated/videomatch_pb2_grpc.py"):
                    self.assertIn(needed, names)
                self.assertFalse([n for n in names if "__pycache__" in n or n.endswith(".pyc")])
                metadata = wheel.read("videomatch_client-0.1.0.dist-info/METADATA").decode()
                self.assertIn("Requires-Dist: grpcio>=1.51", metadata)
                self.assertIn('Requires-Dist: Pillow>=9; extra == "images"', metadata)
                self.assertIn("Requires-Python: >=3.9", metadata)
                # RECORD lists every other file with its hash and size, as pip checks on install.
                record = list(csv.reader(io.StringIO(wheel.read("videomatch_client-0.1.0.dist-info/RECORD").decode())))
                self.assertEqual({row[0] for row in record}, names)
                for path, digest, size in record:
                    if path.endswith("RECORD"):
                        continue
                    data = wheel.read(path)
                    self.assertEqual(int(size), len(data), path)
                    self.assertEqual(digest, "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode(), path)

    def test_without_tomllib_the_backend_reads_pyproject_alike(self):
        # Python 3.9 and 3.10 have no tomllib: the backend's own reader must give what tomllib gives.
        backend = load_backend()
        with open(os.path.join(SOURCE, "pyproject.toml"), encoding="utf-8") as f:
            own = backend.parse_simple_toml(f.read())
        try:
            import tomllib
        except ImportError:
            self.skipTest("tomllib needs Python 3.11")
        with open(os.path.join(SOURCE, "pyproject.toml"), "rb") as f:
            self.assertEqual(own, tomllib.load(f))
        with self.assertRaisesRegex(ValueError, "line 2: not understood"):
            backend.parse_simple_toml('[project]\nauthors = [{name = "x"}, ]\nversion = 1979-05-27T07:32:00\n')

    def test_sdist_builds_a_wheel_with_the_same_files(self):
        backend = load_backend()
        with tempfile.TemporaryDirectory() as folder:
            sdist = backend.build_sdist(folder)
            import tarfile
            with tarfile.open(os.path.join(folder, sdist)) as archive:
                archive.extractall(folder)
            unpacked = os.path.join(folder, sdist[:-len(".tar.gz")])
            out = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '_backend'); import videomatch_build as b; print(b.build_wheel(sys.argv[1]))", folder],
                                 cwd=unpacked, capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            with zipfile.ZipFile(os.path.join(folder, out.stdout.strip())) as wheel, tempfile.TemporaryDirectory() as direct:
                with zipfile.ZipFile(os.path.join(direct, backend.build_wheel(direct))) as reference:
                    self.assertEqual(sorted(wheel.namelist()), sorted(reference.namelist()))


if __name__ == "__main__":
    unittest.main()
