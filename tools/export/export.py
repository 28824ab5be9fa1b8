#!/usr/bin/env python3
"""Export an EfficientLoFTR checkpoint (Hugging Face layout: config.json + model.safetensors) to a VideoMatch model
folder: model.onnx (and model-fp16.onnx with --fp16), videomatch-model.json, selfcheck.safetensors.

    /usr/bin/python3 tools/export/export.py --checkpoint matchanything_eloftr --out models/matchanything-eloftr

Every flag is documented in tools/export/README.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from videomatch_export import checkpoint as checkpoints  # noqa: E402
from videomatch_export import contract, fuse, manifest, onnx_export, safetensors_io, selfcheck  # noqa: E402
from videomatch_export.config import ConfigError  # noqa: E402


def parse(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="folder with config.json and model.safetensors as on the Hub")
    parser.add_argument("--out", help="folder to write (created; files in it are replaced)")
    parser.add_argument("--height", type=int, default=480, help="input height in pixels, a multiple of 32 (default 480)")
    parser.add_argument("--width", type=int, default=640, help="input width in pixels, a multiple of 32 (default 640)")
    parser.add_argument("--top-k", type=int, default=0, dest="top_k",
                        help="refine and return only the K best-scoring matches per pair (default 0: every coarse cell)")
    parser.add_argument("--fp16", action="store_true", help="also write model-fp16.onnx (convolutions and attention in fp16)")
    parser.add_argument("--hf-compat", action="store_true", dest="hf_compat",
                        help="reproduce Hugging Face's fine stage and row layout exactly, for parity checks (not servable)")
    parser.add_argument("--no-fuse", action="store_true", dest="no_fuse", help="keep RepVGG branches and batch norms unfused")
    parser.add_argument("--split", action="store_true",
                        help="also write encoder.onnx (per frame) and matcher.onnx (per pair, from a feature bank) for streams")
    parser.add_argument("--name", help="model name in the manifest (default: the checkpoint folder's name and the size)")
    parser.add_argument("--extra-check", action="append", default=[], metavar="GOLDEN.safetensors",
                        help="also put the pairs (p*.pixel_values, quantised to uint8) of this fixture file into the self-check")
    return parser.parse_args(argv)


def check_arguments(args: argparse.Namespace) -> str:
    """What is wrong with the arguments before any work starts, in one line, or "" when nothing is."""
    if args.top_k < 0:
        return f"--top-k {args.top_k}: give 0 (every coarse cell) or a positive number of matches per pair"
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        return f"--out {args.out} is a file; give a folder (it is created, and files in it are replaced)"
    if os.path.isfile(args.checkpoint):
        return f"--checkpoint {args.checkpoint} is a file; give the folder that holds config.json and model.safetensors"
    return ""


def main(argv: list) -> int:
    args = parse(argv)
    if not args.checkpoint or not args.out:
        print("export.py needs --checkpoint DIR and --out DIR.\n" + checkpoints.DOWNLOAD_HINT, file=sys.stderr)
        return 2
    problem = check_arguments(args)
    if problem:
        print(f"export.py: {problem}", file=sys.stderr)
        return 2
    started = time.time()
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:
        model, cfg = checkpoints.build(args.checkpoint, args.height, args.width, top_k=args.top_k, hf_compat=args.hf_compat)
    except (checkpoints.CheckpointError, ConfigError, safetensors_io.SafetensorsError, ValueError) as error:
        print(f"export.py: {error}", file=sys.stderr)
        return 1
    if not args.no_fuse:
        fuse.fuse(model)
    os.makedirs(args.out, exist_ok=True)
    if args.split and args.hf_compat:
        print("export.py: --split and --hf-compat do not go together (the split is for serving)", file=sys.stderr)
        return 1
    onnx_path = os.path.join(args.out, "model.onnx")
    graphs = [onnx_export.export(model, onnx_path)]
    if args.split:
        graphs += onnx_export.export_split(model, os.path.join(args.out, "encoder.onnx"), os.path.join(args.out, "matcher.onnx"))
    if args.fp16:
        from videomatch_export import fp16
        graphs.append(fp16.export(model, os.path.join(args.out, "model-fp16.onnx")))
        if args.split:
            graphs += fp16.export_split(model, os.path.join(args.out, "encoder-fp16.onnx"), os.path.join(args.out, "matcher-fp16.onnx"))
    extra = []
    for path in args.extra_check:
        golden, _ = safetensors_io.read(path)
        for key in sorted(k for k in golden if k.endswith(".pixel_values") and not k.startswith("b2.")):
            if golden[key].shape[-2:] == (args.height, args.width):
                extra.append(selfcheck.quantize(golden[key]))
    checks = selfcheck.write(model, os.path.join(args.out, "selfcheck.safetensors"), extra)
    name = args.name or f"{os.path.basename(os.path.normpath(args.checkpoint))}-{args.height}x{args.width}" + \
        (f"-top{model.top_k}" if model.top_k < model.cells else "") + ("-hf-compat" if args.hf_compat else "")
    options = {"height": args.height, "width": args.width, "topK": model.top_k, "fp16": args.fp16,
               "hfCompat": args.hf_compat, "fused": not args.no_fuse, "split": args.split}
    seconds = time.time() - started
    manifest.write(args.out, model, name, args.checkpoint, options, graphs, seconds)
    from videomatch_export import costs
    macs = costs.of_model(model)
    print(f"wrote {args.out}: model.onnx ({os.path.getsize(onnx_path) / 1e6:.1f} MB, {macs / 1e9:.2f} GMAC per pair)"
          + "".join(f", {g['file']}" for g in graphs[1:]) + f", selfcheck.safetensors ({checks[contract.PIXELS].shape[0]} pairs, "
          f"{int((checks[contract.MATCHES][:, 0] >= 0).sum())} matched slots), {manifest.FILE_NAME}; "
          f"{cfg.num_attention_layers} attention layers, {model.cells} cells, top-k {model.top_k}; {seconds:.1f} s")
    fp16_files = [g["file"] for g in graphs if g["precision"] == "fp16"]
    if fp16_files:
        # The fp16 graphs cannot run here (torch runs no fp16 convolutions on CPU, and ONNX Runtime is not a dependency):
        # the server checks them at start and stays NOT_SERVING when they fail, so say how to check them before then.
        print(f"WARNING: {' and '.join(fp16_files)} {'is' if len(fp16_files) == 1 else 'are'} not checked by the exporter: run "
              f"`videomatch verify {args.out}` where the model will serve (it judges fp16 by the share of fp32's matches kept; "
              "the server runs the same check at start)", file=sys.stderr)
    print(f"note: the graph keeps only matches scoring above its coarse threshold {cfg.coarse_matching_threshold:g} (from config.json), "
          "so a lower match threshold on the server adds none; higher ones filter")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
