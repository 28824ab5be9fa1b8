#!/usr/bin/env python3
"""The GPU run in one command: parity, the PyTorch baseline, the raw ONNX Runtime session and the full server.

    python3 tools/bench-gpu/bench.py --out DIR [--app DIR] [--checkpoint DIR] [--only STEP,...] [--dry-run]

Steps, in order, each in a child process with a hard time limit; a step that fails or runs out of time is recorded
and the next one runs. After every step DIR/results.json and DIR/results.md are rewritten, so what was measured
survives a run cut short.

  checkpoint  the EfficientLoFTR checkpoint to export: --checkpoint, else the fixtures' (../shared), else HF's model
              initialised at random from the default config (seeded; needs transformers) written as a Hub folder
  export      tools/export/export.py: fp32 + fp16 graphs, and the stream split
  parity      HF's model (transformers) vs this project's PyTorch module on the device, fp32 and fp16: coarse matches
              and scores on the same weights. Without transformers: the module against HF's golden outputs
  baseline    HF's model in eager PyTorch, fp32 and fp16, batch 1/8/32: pairs/s (the figure to beat)
  raw         tools/VideoMatch.Benchmarks per export variant and batch: the raw session and the server beside it;
              at the largest batch a sweep of the CUDA provider settings (cuDNN algorithm search, NHWC)
  server      the full server over gRPC driven by the load generator: 16 streams × 30 fps for 20 s, then saturation

--dry-run runs the same steps on CPU with the tiny fixture and batches of 1–2 (CI runs it: tools/bench-gpu/tests).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
EXPORT = os.path.join(ROOT, "tools", "export")
FIXTURES = os.path.normpath(os.path.join(ROOT, "..", "shared", "reference", "eloftr-fixtures"))
STEPS = ("checkpoint", "export", "parity", "baseline", "raw", "server")

# Seconds per step: on the GPU host, and in a dry run on 2 CPU cores.
LIMITS = {
    # Two device calls of at most 600 s each (README: transfer plan): checkpoint..baseline ≤ 470 s, raw + server ≤ 450 s.
    "gpu": {"checkpoint": 60, "export": 200, "parity": 90, "baseline": 120, "raw": 300, "server": 150},
    "dry": {"checkpoint": 30, "export": 240, "parity": 120, "baseline": 60, "raw": 240, "server": 120},
}


def plan(dry: bool) -> dict:
    """What each step runs: sizes, batches, loads."""
    if dry:
        return {"fixture": "tiny", "height": 128, "width": 160, "batches": [1, 2], "pairs": 4, "streams": 2, "provider": "cpu",
                "sweep": [("Exhaustive", False)], "hf_batches": [1, 2],
                "load": {"streams": 2, "fps": 2, "seconds": 3, "batch": 2}, "saturate": {"streams": 4, "fps": 1000, "seconds": 2, "batch": 2}}
    return {"fixture": "default", "height": 480, "width": 640, "batches": [1, 8, 32], "pairs": 128, "streams": 8, "provider": "cuda",
            "sweep": [("Exhaustive", False), ("Heuristic", False), ("Exhaustive", True)], "hf_batches": [1, 8, 32],
            "load": {"streams": 16, "fps": 30, "seconds": 20, "batch": 32}, "saturate": {"streams": 64, "fps": 1000, "seconds": 10, "batch": 32}}


# ----------------------------------------------------------------------------------------------------------------
# The parent: runs each step as a child, collects and writes the results.

def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for results.json, results.md, the exports and each step's log")
    parser.add_argument("--app", help="folder of tools/VideoMatch.Benchmarks' publish (self-contained on the GPU host); default: its Release build here")
    parser.add_argument("--checkpoint", help="EfficientLoFTR checkpoint folder (config.json + model.safetensors)")
    parser.add_argument("--only", help="comma-separated steps to run (the others keep their earlier results in --out)")
    parser.add_argument("--dry-run", action="store_true", dest="dry", help="CPU, the tiny fixture, batches of 1-2")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.step:
        return run_step(args)

    only = [s for s in (args.only or ",".join(STEPS)).split(",") if s]
    unknown = [s for s in only if s not in STEPS]
    if unknown:
        print(f"bench.py: unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}", file=sys.stderr)
        return 2
    results = load_results(args.out)
    results["mode"] = "dry-run (CPU, tiny fixture)" if args.dry else "GPU"
    results["started"] = results.get("started") or time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    limits = LIMITS["dry" if args.dry else "gpu"]
    for name in only:
        command = [sys.executable, os.path.abspath(__file__), "--step", name, "--out", args.out]
        command += ["--dry-run"] if args.dry else []
        command += ["--app", args.app] if args.app else []
        command += ["--checkpoint", args.checkpoint] if args.checkpoint else []
        log_path = os.path.join(args.out, f"{name}.log")
        started = time.time()
        print(f"bench.py: {name} (limit {limits[name]} s) ...", flush=True)
        with open(log_path, "w") as log:
            try:
                code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=limits[name]).returncode
                status = "ok" if code == 0 else ("skipped" if code == 3 else "failed")
            except subprocess.TimeoutExpired:
                status, code = "timed out", None
        entry = read_json(os.path.join(args.out, f"{name}.json")) or {}
        entry.update({"status": status, "seconds": round(time.time() - started, 1), "exit": code, "log": os.path.basename(log_path)})
        if status != "ok" and "detail" not in entry:
            entry["detail"] = tail(log_path)
        results.setdefault("steps", {})[name] = entry
        write_results(args.out, results)
        print(f"bench.py: {name}: {status} in {entry['seconds']} s" + (f" ({entry['detail']})" if status != "ok" else ""), flush=True)
    failed = [n for n in only if results["steps"][n]["status"] in ("failed", "timed out")]
    print(f"bench.py: results in {os.path.join(args.out, 'results.md')}; {len(only) - len(failed)} of {len(only)} steps ran without failing")
    return 1 if failed else 0


def load_results(out: str) -> dict:
    return read_json(os.path.join(out, "results.json")) or {}


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.read().strip().splitlines()[-lines:])[-600:]
    except OSError:
        return ""


def write_results(out: str, results: dict) -> None:
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(results))


def markdown(results: dict) -> str:
    steps = results.get("steps", {})
    lines = [f"# VideoMatch GPU run ({results.get('mode')}), started {results.get('started')}", ""]
    device = steps.get("parity", {}).get("device") or steps.get("baseline", {}).get("device")
    if device:
        lines += [f"Device: {device}", ""]
    lines += ["| step | status | seconds | detail |", "|---|---|---|---|"]
    for name in STEPS:
        if name in steps:
            s = steps[name]
            lines.append(f"| {name} | {s['status']} | {s['seconds']} | {str(s.get('detail', '')).replace('|', '/')} |")
    for name, title in (("parity", "Parity"), ("baseline", "PyTorch eager baseline (HF's model)"), ("raw", "ONNX Runtime from C#: raw session and server"),
                        ("server", "Full server over gRPC (load generator)")):
        rows = steps.get(name, {}).get("rows")
        if rows:
            keys = list(rows[0].keys())
            lines += ["", f"## {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(format_cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def format_cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------------------------------------------
# A child: one step. Exit 0 done, 3 skipped (with a reason), anything else failed.

SKIPPED = 3


class Skip(Exception):
    pass


def run_step(args) -> int:
    sys.path.insert(0, EXPORT)
    settings = plan(args.dry)
    entry = {}
    try:
        STEP_FUNCTIONS[args.step](args, settings, entry)
        code = 0
    except Skip as reason:
        entry["detail"] = f"skipped: {reason}"
        code = SKIPPED
    except Exception as error:  # recorded, and the next step runs
        traceback.print_exc()
        entry["detail"] = f"{type(error).__name__}: {error}"[:600]
        code = 1
    with open(os.path.join(args.out, f"{args.step}.json"), "w") as f:
        json.dump(entry, f, indent=2)
    return code


def step_checkpoint(args, settings, entry) -> None:
    target = os.path.join(args.out, "checkpoint")
    if args.checkpoint:
        source = args.checkpoint
    elif os.path.isfile(os.path.join(FIXTURES, settings["fixture"], "model.safetensors")):
        source = os.path.join(FIXTURES, settings["fixture"])
    else:
        if args.dry:
            raise Skip(f"the {settings['fixture']} fixture (../shared/reference/eloftr-fixtures) is absent")
        write_random_checkpoint(target)
        entry.update({"checkpoint": target, "weights": "HF's model initialised at random from the default config (seed 0)"})
        return
    if os.path.exists(target):
        shutil.rmtree(target)
    os.makedirs(target)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(source, name), target)
    entry.update({"checkpoint": target, "weights": f"copied from {source}"})


def write_random_checkpoint(target: str) -> None:
    """HF's EfficientLoFTR from the default config with seeded random weights, written as a Hub folder."""
    import torch
    from transformers import EfficientLoFTRConfig, EfficientLoFTRForKeypointMatching
    from videomatch_export import safetensors_io
    torch.manual_seed(0)
    model = EfficientLoFTRForKeypointMatching(EfficientLoFTRConfig()).eval()
    os.makedirs(target, exist_ok=True)
    # What save_pretrained writes (the keys that differ from PretrainedConfig's), as a Hub folder has it.
    fields = json.loads(model.config.to_json_string(use_diff=True))
    fields.pop("transformers_version", None)
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(fields, f, indent=2, sort_keys=True)
    safetensors_io.write(os.path.join(target, "model.safetensors"), {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})


def checkpoint_folder(args) -> str:
    folder = os.path.join(args.out, "checkpoint")
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        raise Skip("no checkpoint: the checkpoint step did not run or failed")
    return folder


def models(args) -> dict:
    return {"fp32": os.path.join(args.out, "models", "eloftr"), "split": os.path.join(args.out, "models", "eloftr-split")}


def step_export(args, settings, entry) -> None:
    checkpoint = checkpoint_folder(args)
    exported = []
    for variant, extra in (("fp32", ["--fp16"]), ("split", ["--split"])):
        out = models(args)[variant]
        command = [sys.executable, os.path.join(EXPORT, "export.py"), "--checkpoint", checkpoint, "--out", out,
                   "--height", str(settings["height"]), "--width", str(settings["width"]), "--name", f"eloftr-{variant}"] + extra
        started = time.time()
        run = subprocess.run(command, capture_output=True, text=True)
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr)
        if run.returncode != 0:
            # Said in the record, not only on the console: the last lines of export.py's own message.
            reason = " | ".join(run.stderr.strip().splitlines()[-3:]) or f"exit code {run.returncode}, nothing on stderr"
            raise RuntimeError(f"export.py ({variant}) with {sys.executable} failed: {reason}")
        exported.append(f"{variant} {time.time() - started:.0f} s")
    entry["detail"] = "exported: " + ", ".join(exported)


def device_name(torch) -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"


def hf_model(checkpoint: str, device, dtype):
    """HF's own model (transformers) with the checkpoint's weights."""
    import torch
    from transformers import EfficientLoFTRConfig, EfficientLoFTRForKeypointMatching
    from videomatch_export import safetensors_io
    with open(os.path.join(checkpoint, "config.json")) as f:
        fields = json.load(f)
    for key in ("model_type", "architectures", "dtype", "torch_dtype", "transformers_version"):
        fields.pop(key, None)
    model = EfficientLoFTRForKeypointMatching(EfficientLoFTRConfig(**fields)).eval()
    tensors = safetensors_io.read(os.path.join(checkpoint, "model.safetensors"))[0]
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    return model.to(device=device, dtype=dtype)


def test_pixels(settings, torch, batch: int = 1):
    """(B, 2, 3, H, W) in [0, 1]: the fixture's pairs where present, else a smooth texture and a shifted copy."""
    golden = os.path.join(FIXTURES, settings["fixture"], "golden.safetensors")
    if os.path.isfile(golden):
        from videomatch_export import safetensors_io
        pairs = [torch.from_numpy(v.copy()) for k, v in sorted(safetensors_io.read(golden)[0].items()) if single_pair(k)]
        pixels = torch.cat(pairs)
    else:
        generator = torch.Generator().manual_seed(1)
        texture = torch.nn.functional.avg_pool2d(torch.rand(1, 1, settings["height"] + 8, settings["width"] + 8, generator=generator), 5, 1, 2)
        first, second = texture[..., 4:-4, 4:-4], texture[..., 2:-6, 1:-7]
        pixels = torch.stack([first, second], 1).repeat(1, 1, 3, 1, 1)
    return pixels.repeat((batch + len(pixels) - 1) // len(pixels), 1, 1, 1, 1)[:max(batch, len(pixels))]


def single_pair(key: str) -> bool:
    """A fixture pair's input (pa, pb, ...), not a batch of them (b2)."""
    return key.endswith(".pixel_values") and key.startswith("p")


def step_parity(args, settings, entry) -> None:
    import torch
    from videomatch_export import checkpoint as checkpoints
    checkpoint = checkpoint_folder(args)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    entry["device"] = device_name(torch)
    pixels = test_pixels(settings, torch)
    ours, _ = checkpoints.build(checkpoint, settings["height"], settings["width"])
    ours = ours.eval().to(device)
    rows = []
    with torch.no_grad():
        try:
            import transformers  # noqa: F401
        except ImportError:
            transformers = None
        if transformers is None:
            # The reference is HF's own output, stored with the fixture.
            golden = os.path.join(FIXTURES, settings["fixture"], "golden.safetensors")
            if not os.path.isfile(golden):
                raise Skip("transformers is not installed and there are no golden outputs to compare with")
            from videomatch_export import safetensors_io
            stored = safetensors_io.read(golden)[0]
            # Single pairs only: HF's batched outputs carry its batch defects (reference/efficientloftr.md), which the module does not copy.
            names = sorted(k[: -len(".pixel_values")] for k in stored if single_pair(k))
            for name in names:
                matches, scores, _ = ours.forward_float(torch.from_numpy(stored[f"{name}.pixel_values"].copy()).to(device))
                hf_matches = torch.from_numpy(stored[f"{name}.matches"].copy())[:, 1]
                hf_scores = torch.from_numpy(stored[f"{name}.matching_scores"].copy())[:, 1]
                rows.append(compare(f"{name}: module fp32 vs HF golden (CPU)", matches[:, 0].cpu(), scores[:, 0].float().cpu(), hf_matches, hf_scores))
            entry["reference"] = "HF's golden outputs (transformers is not installed here)"
        else:
            for dtype in (torch.float32, torch.float16):
                hf = hf_model(checkpoint, device, dtype)
                module = ours.to(dtype=dtype) if dtype != torch.float32 else ours
                output = hf(pixel_values=pixels.to(device=device, dtype=dtype))
                matches, scores, _ = module.forward_float(pixels.to(device=device, dtype=dtype))
                rows.append(compare(f"module vs HF, {str(dtype).split('.')[-1]}, {device.type}", matches[:, 0].cpu(), scores[:, 0].float().cpu(),
                                    output.matches[:, 1].cpu(), output.matching_scores[:, 1].float().cpu()))
                del hf
            entry["reference"] = "HF's model (transformers) on the same weights and pixels"
    entry["rows"] = rows
    entry["detail"] = "; ".join(f"{r['case']}: {r['same_match']:.4f} of slots agree" for r in rows)


def compare(case: str, matches, scores, hf_matches, hf_scores) -> dict:
    same = (matches == hf_matches).float().mean().item()
    both = (matches >= 0) & (hf_matches >= 0)
    score_diff = (scores - hf_scores).abs()[both].max().item() if bool(both.any()) else 0.0
    return {"case": case, "slots": int(matches.numel()), "matched_hf": int((hf_matches >= 0).sum()), "same_match": same, "max_score_diff": score_diff}


def step_baseline(args, settings, entry) -> None:
    import torch
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise Skip("transformers is not installed (the baseline is HF's model in eager PyTorch)")
    checkpoint = checkpoint_folder(args)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    entry["device"] = device_name(torch)
    rows = []
    for dtype in (torch.float32, torch.float16):
        if dtype == torch.float16 and device.type != "cuda":
            continue
        model = hf_model(checkpoint, device, dtype)
        for batch in settings["hf_batches"]:
            pixels = test_pixels(settings, torch, batch)[:batch].to(device=device, dtype=dtype)
            with torch.no_grad():
                for _ in range(3):
                    model(pixel_values=pixels)
                sync(torch, device)
                runs, started = 0, time.time()
                while runs < 3 or time.time() - started < 3:
                    model(pixel_values=pixels)
                    runs += 1
                sync(torch, device)
            seconds = time.time() - started
            rows.append({"dtype": str(dtype).split(".")[-1], "batch": batch, "pairs_per_s": runs * batch / seconds, "ms_per_batch": 1000 * seconds / runs})
        del model
    entry["rows"] = rows
    entry["detail"] = ", ".join(f"{r['dtype']} b{r['batch']}: {r['pairs_per_s']:.1f} pairs/s" for r in rows)


def sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def benchmarks_command(args) -> list:
    folder = args.app or os.path.join(ROOT, "tools", "VideoMatch.Benchmarks", "bin", "Release", "net10.0")
    native = os.path.join(folder, "VideoMatch.Benchmarks")
    if os.path.isfile(native) and os.access(native, os.X_OK):
        return [native]
    dll = os.path.join(folder, "VideoMatch.Benchmarks.dll")
    if os.path.isfile(dll) and shutil.which("dotnet"):
        return ["dotnet", dll]
    raise FileNotFoundError(f"no VideoMatch.Benchmarks in {folder}: build it (dotnet build -c Release tools/VideoMatch.Benchmarks) or pass --app")


def run_benchmarks(args, arguments: list, json_path: str) -> list:
    subprocess.run(benchmarks_command(args) + arguments + ["--json", json_path], check=True)
    written = read_json(json_path)
    return written if isinstance(written, list) else [written]


def step_raw(args, settings, entry) -> None:
    exported = models(args)
    if not os.path.isfile(os.path.join(exported["fp32"], "videomatch-model.json")):
        raise Skip("no export: the export step did not run or failed")
    rows = []
    folders = {"fp32": exported["fp32"], "fp16": exported["fp32"], "split": exported["split"]}
    if args.dry:
        # Each variant once: the dry run checks the plumbing, not the figures.
        runs = [("fp32", folders["fp32"], "fp32", 1, "Exhaustive", False), ("fp16", folders["fp16"], "fp16", 2, "Exhaustive", False),
                ("split", folders["split"], "fp32", 2, "Exhaustive", False)]
    else:
        # Most telling first: a step cut short by its limit keeps the rows it finished.
        largest = settings["batches"][-1]
        runs = [("fp16", folders["fp16"], "fp16", batch, "Exhaustive", False) for batch in settings["batches"]]
        runs += [("fp32", folders["fp32"], "fp32", batch, "Exhaustive", False) for batch in (settings["batches"][0], largest)]
        runs += [("split", folders["split"], "fp32", largest, "Exhaustive", False)]
        runs += [("fp16", folders["fp16"], "fp16", largest, cudnn, nhwc) for cudnn, nhwc in settings["sweep"][1:]]
    for index, (variant, folder, precision, batch, cudnn, nhwc) in enumerate(runs):
        arguments = ["--model", folder, "--batch", str(batch), "--pairs", str(max(settings["pairs"], 4 * batch)), "--streams", str(settings["streams"]),
                     "--provider", settings["provider"], "--precision", precision, "--cudnn", cudnn, "--matching-only"] + (["--nhwc"] if nhwc else [])
        try:
            for row in run_benchmarks(args, arguments, os.path.join(args.out, f"raw-{index}.json")):
                rows.append({"variant": variant, **row})
        except subprocess.CalledProcessError as error:
            rows.append({"variant": variant, "batch": batch, "precision": precision, "cudnn": cudnn, "nhwc": nhwc, "error": f"exit {error.returncode}"})
        entry["rows"] = rows
        with open(os.path.join(args.out, "raw.json"), "w") as f:
            json.dump(entry, f, indent=2)
    if not any("raw_pairs_per_s" in r for r in rows):
        raise RuntimeError("no configuration ran")
    best = max((r for r in rows if "raw_pairs_per_s" in r), key=lambda r: r["server_pairs_per_s"])
    entry["detail"] = f"best server figure: {best['server_pairs_per_s']:.1f} pairs/s ({best['variant']}, batch {best['batch']})"


def step_server(args, settings, entry) -> None:
    exported = models(args)
    if not os.path.isfile(os.path.join(exported["fp32"], "videomatch-model.json")):
        raise Skip("no export: the export step did not run or failed")
    precision = "fp32" if settings["provider"] == "cpu" else "fp16"
    rows = []
    for name in ("load", "saturate"):
        load = settings[name]
        arguments = ["load", "--model", exported["fp32"], "--provider", settings["provider"], "--precision", precision, "--batch", str(load["batch"]),
                     "--streams", str(load["streams"]), "--fps", str(load["fps"]), "--seconds", str(load["seconds"])]
        for row in run_benchmarks(args, arguments, os.path.join(args.out, f"server-{name}.json")):
            rows.append({"run": name, **row})
    entry["rows"] = rows
    lost = sum(r["unanswered"] for r in rows)
    entry["detail"] = "; ".join(f"{r['run']}: {r['pairs_per_s']:.1f} pairs/s, p99 {r['p99_ms']:.0f} ms" for r in rows) + f"; {lost} frames unanswered"
    if lost:
        raise RuntimeError(entry["detail"])


STEP_FUNCTIONS = {"checkpoint": step_checkpoint, "export": step_export, "parity": step_parity, "baseline": step_baseline, "raw": step_raw, "server": step_server}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
