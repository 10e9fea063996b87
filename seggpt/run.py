"""`python -m seggpt.run`: in-context segmentation of images from example image/mask pairs.

One or more prompts (an image and its mask) tell SegGPT what to segment: instances, stuff, parts,
contours, text. Every input image gets an index PNG (ids as in the prompt masks, the prompt's palette
where it has one) and an overlay PNG. User mistakes: one line on stderr, exit code 2.

Examples:
    python -m seggpt.run --prompt hmbb_1.jpg hmbb_1_target.png hmbb_2.jpg hmbb_3.jpg --out out/
    python -m seggpt.run --prompt a.jpg a_mask.png --prompt b.jpg b_mask.png query.jpg --type semantic --out out/
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below: one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from PIL import Image

from seggpt.cli import ArgumentParser, EXIT_OK, run_cli
from seggpt.colors import davis_palette
from seggpt.errors import InputError
from seggpt.device import (DEVICE_HELP, DTYPE_CHOICES, DTYPE_HELP, describe_precision, dtype_reason, resolve_device,
                           resolve_dtype, set_threads)
from seggpt.io import overlay, read_image, save_index_png, save_png
from seggpt.masks import load_mask
from seggpt.model import SegGPT
from seggpt.predictor import SegGPTPredictor
from seggpt.outputs import OVERWRITE_HELP
from seggpt.run_checks import claim_output, output_names, preflight
from seggpt.tune import TunedPrompt, predict_tuned
from seggpt.weights_file import OFFICIAL_WEIGHTS, PACKAGED_WEIGHTS, default_weights_note


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m seggpt.run", description=__doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", nargs=2, action="append", metavar=("IMAGE", "MASK"),
                    help="an example image and its mask (repeat for several prompts: feature ensemble)")
    ap.add_argument("--prompt-file", metavar="FILE",
                    help="a tuned prompt (python -m seggpt.tune) instead of --prompt; only for the weights it was tuned for")
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="images to segment")
    ap.add_argument("--out", required=True, metavar="DIR")
    ap.add_argument("--weights", default=None, metavar="ID|PATH",
                    help=f"{OFFICIAL_WEIGHTS}, BAAI/SegGPT (official, from the Hub), {PACKAGED_WEIGHTS} (packaged, "
                         f"offline), or a checkpoint file (default: {OFFICIAL_WEIGHTS}: the best masks; a 1.5 GB "
                         "download the first time)")
    ap.add_argument("--type", default="instance", choices=["instance", "semantic"], dest="embedding_type",
                    help="SegGPT's task token: instance (objects) or semantic (stuff, classes)")
    ap.add_argument("--device", default="auto", help=DEVICE_HELP)
    ap.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=f"{DTYPE_HELP} (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: the machine's cores)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    return ap


def run(args: argparse.Namespace, log: logging.Logger) -> List[Path]:
    preflight(args)  # every argument checked before any work
    if bool(args.prompt) == bool(args.prompt_file):
        raise InputError("give either --prompt IMAGE MASK (one or more) or --prompt-file FILE")
    threads = set_threads(args.threads, "--threads")
    prompt_images, prompt_labels, pal = [], [], None
    for image_path, mask_path in args.prompt or []:
        image = read_image(image_path)
        parsed = load_mask(mask_path)
        for w in parsed.warnings:
            log.warning("%s: %s", mask_path, w)
        if parsed.labels.shape != image.shape[:2]:
            raise InputError(f"{mask_path}: mask is {parsed.labels.shape[1]}x{parsed.labels.shape[0]}, "
                             f"its image {image_path} is {image.shape[1]}x{image.shape[0]}")
        prompt_images.append(image)
        prompt_labels.append(parsed.labels)
        pal = parsed.palette if pal is None else pal
    queries = [read_image(p) for p in args.inputs]
    weights = OFFICIAL_WEIGHTS if args.weights is None else args.weights
    device = resolve_device(args.device)
    # which weights and why, before a first run downloads them
    log.info("%s", default_weights_note(weights, None if args.weights is None else "--weights"))
    model = SegGPT.from_pretrained(weights, device=device)
    width = model.config.embed_dim
    predictor = SegGPTPredictor(model, dtype=resolve_dtype(args.dtype, device, width))
    log.info("weights %s on %s%s", weights, device,
             describe_precision(device, predictor.dtype, threads, dtype_reason(args.dtype, device, width)))
    if args.prompt_file:
        tuned = TunedPrompt.load(args.prompt_file, predictor.model)
        results = predict_tuned(predictor, queries, tuned, args.embedding_type, args.batch_size)
    else:
        num_labels = max(int(m.max()) for m in prompt_labels)
        results = predictor.predict(queries, prompt_images, prompt_labels, num_labels=num_labels,
                                    embedding_type=args.embedding_type, batch_size=args.batch_size)
    pal = pal if pal is not None else davis_palette()
    out = claim_output(args).folder  # checked again; our earlier run there emptied, the manifest written
    written = []
    for (_, mask_name, overlay_name), image, res in zip(output_names(args.inputs), queries, results):
        save_index_png(out / mask_name, res.labels, pal)
        save_png(out / overlay_name, Image.fromarray(overlay(image, res.labels, pal)))
        written.append(out / mask_name)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")

    def work() -> int:
        written = run(args, logging.getLogger("seggpt.run"))
        print(f"{len(written)} image(s) segmented; masks and overlays in {args.out}")
        return EXIT_OK

    return run_cli(work)


if __name__ == "__main__":
    sys.exit(main())
