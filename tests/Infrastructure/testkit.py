#!/usr/bin/python3
"""What test.sh needs besides the runners themselves, in one place.

  testkit.py settings                 the test-server settings (Server/test-server.json) as server arguments, one per line
  testkit.py wait-health ADDR SECS    waits until grpc.health.v1 at ADDR (host:port) says SERVING; exit 1 if it never does
  testkit.py unittest FOLDER OUT      runs a unittest folder (verbose, to stderr) and writes its results to OUT (JSON)
  testkit.py tally FOLDER             adds up every result file under FOLDER (.trx, junit .xml, .json) and prints
                                      one line per file and the closing "N passed, N failed, N skipped"

Results are read from the runners' machine-readable files (trx, node's junit reporter, the JSON written above),
never from their console output.
"""
import json
import os
import sys
import time
import xml.etree.ElementTree as ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))


def settings():
    with open(os.path.join(HERE, "Server", "test-server.json"), encoding="utf-8") as f:
        tree = json.load(f)

    def flatten(node, prefix):
        for key, value in node.items():
            if key.startswith("//"):
                continue
            name = f"{prefix}:{key}" if prefix else key
            if isinstance(value, dict):
                yield from flatten(value, name)
            else:
                text = ("true" if value else "false") if isinstance(value, bool) else str(value)
                yield f"--{name}={text}"

    for argument in flatten(tree, ""):
        print(argument)


def wait_health(address, seconds):
    import grpc  # apt python3-grpcio; imported here so the other commands need only the standard library

    # grpc.health.v1.Health/Check by hand: HealthCheckRequest{} is empty; HealthCheckResponse.status is field 1
    # (varint), SERVING = 1. No generated stubs are needed for these two messages.
    deadline = time.monotonic() + seconds
    last = "no answer"
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        while time.monotonic() < deadline:
            try:
                # wait_for_ready: the call waits for the connection instead of failing at once; a loop of calls that
                # fail at once keeps gRPC's connection attempt from finishing (a server up in 0.5 s was seen after 10 s).
                answer = check(b"", timeout=2, wait_for_ready=True)
                if answer == b"\x08\x01":
                    return 0
                last = f"status bytes {answer!r} (not SERVING yet)"
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            time.sleep(0.25)
    print(f"testkit: {address} never reported SERVING in {seconds} s (last: {last})", file=sys.stderr)
    return 1


def run_unittest(folder, out):
    import unittest

    suite = unittest.defaultTestLoader.discover(folder, top_level_dir=folder)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stderr).run(suite)
    failed = [test.id() for test, _ in result.failures + result.errors]
    failed += [test.id() for test in result.unexpectedSuccesses]
    report = {
        "passed": result.testsRun - len(failed) - len(result.skipped) - len(result.expectedFailures),
        "failed": len(failed),
        "skipped": len(result.skipped) + len(result.expectedFailures),
        "failures": failed,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    return 0 if not failed else 1


def _trx(path):
    ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
    root = ElementTree.parse(path).getroot()
    passed = failed = skipped = 0
    failures = []
    for result in root.iterfind(".//t:Results/t:UnitTestResult", ns):
        outcome = result.get("outcome")
        if outcome == "Passed":
            passed += 1
        elif outcome in ("NotExecuted", "Inconclusive"):
            skipped += 1
        else:
            failed += 1
            failures.append(result.get("testName"))
    return passed, failed, skipped, failures


def _junit(path):
    root = ElementTree.parse(path).getroot()
    passed = failed = skipped = 0
    failures = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(f"{case.get('classname')}.{case.get('name')}")
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failures


def _json(path):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    return report["passed"], report["failed"], report["skipped"], report.get("failures", [])


def tally(folder):
    readers = {".trx": _trx, ".xml": _junit, ".json": _json}
    totals = [0, 0, 0]
    for directory, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            reader = readers.get(os.path.splitext(name)[1])
            if reader is None:
                continue
            path = os.path.join(directory, name)
            try:
                passed, failed, skipped, failures = reader(path)
            except (ElementTree.ParseError, ValueError, KeyError, OSError) as e:
                print(f"  {os.path.relpath(path, folder)}: unreadable ({e}); counted as 1 failed")
                totals[1] += 1
                continue
            print(f"  {os.path.relpath(path, folder)}: {passed} passed, {failed} failed, {skipped} skipped")
            for failure in failures:
                print(f"    failed: {failure}")
            totals = [totals[0] + passed, totals[1] + failed, totals[2] + skipped]
    return totals


def main(argv):
    if len(argv) >= 1 and argv[0] == "settings":
        settings()
        return 0
    if len(argv) == 3 and argv[0] == "wait-health":
        return wait_health(argv[1], float(argv[2]))
    if len(argv) == 3 and argv[0] == "unittest":
        return run_unittest(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "tally":
        passed, failed, skipped = tally(argv[1])
        print(f"{passed} {failed} {skipped}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
