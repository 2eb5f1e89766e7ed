"""The ``centertargets`` command (also ``python -m centertargets``)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np


def _summarise(targets: dict[str, np.ndarray]) -> list[str]:
    rows = [f"  {'target':<15} {'shape':<16} {'dtype':<8} {'nonzero':>8} {'min':>9} {'max':>9}"]
    for name, a in targets.items():
        rows.append(f"  {name:<15} {str(a.shape):<16} {str(a.dtype):<8} "
                    f"{int(np.count_nonzero(a)):>8} {float(a.min()):>9.4g} {float(a.max()):>9.4g}")
    return rows


def cmd_demo(args: argparse.Namespace) -> int:
    """Encode a built-in synthetic scene for both tasks and print what came out."""
    from .config import CtdetConfig, MultiPoseConfig
    from .encoders import CtdetEncoder, MultiPoseEncoder
    from .pipeline import AugmentParams, annotations_to_output
    from .synthetic import COCO_CATEGORY_IDS, detection_scene, person_scene

    out = args.output_size
    scene = person_scene(args.seed, num_people=args.people)
    params = AugmentParams.centered(scene.width, scene.height)
    cfg = MultiPoseConfig(output_size=(out, out))
    boxes, kps = annotations_to_output(scene.boxes_xywh, scene.width, params, cfg.output_size,
                                       keypoints=scene.keypoints, flip_idx=cfg.flip_idx)
    t, rep = MultiPoseEncoder(cfg).encode_with_report(boxes, kps)
    print(f"multi_pose: {len(boxes)} persons in a {scene.width}x{scene.height} image "
          f"-> {out}x{out} output map (seed {args.seed})")
    print("\n".join(_summarise(t)))
    print(f"  report: {rep.as_dict()}")

    scene = detection_scene(args.seed, num_objects=args.objects)
    params = AugmentParams.centered(scene.width, scene.height)
    ccfg = CtdetConfig(output_size=(out, out))
    boxes, _ = annotations_to_output(scene.boxes_xywh, scene.width, params, ccfg.output_size)
    classes = np.searchsorted(np.array(COCO_CATEGORY_IDS), scene.category_ids)
    t2, rep2 = CtdetEncoder(ccfg).encode_with_report(boxes, classes)
    print(f"\nctdet: {len(boxes)} objects of 80 classes -> {out}x{out} output map")
    print("\n".join(_summarise(t2)))
    print(f"  report: {rep2.as_dict()}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Recompute reference fixtures; one line per mismatch, then 'N passed, M failed'."""
    from tqdm import tqdm

    from .compare import check_fixture, iter_fixture_paths

    paths = list(iter_fixture_paths(args.paths))
    passed = failed = 0
    for p in tqdm(paths, desc="fixtures", unit="file", disable=None, file=sys.stderr):
        if not p.exists():
            print(f"FAIL  {p}: no such file or folder")
            failed += 1
            continue
        r = check_fixture(p)
        if r.ok:
            passed += 1
            if args.verbose:
                print(r.line())
        else:
            failed += 1
            print(r.line())
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="centertargets",
        description="Fast, exact CenterNet training targets. Without a command, runs 'demo'.")
    sub = p.add_subparsers(dest="command")

    d = sub.add_parser("demo", help="encode a built-in synthetic scene and print a summary")
    d.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    d.add_argument("--people", type=int, default=8, help="persons in the pose scene (default 8)")
    d.add_argument("--objects", type=int, default=30, help="objects in the detection scene")
    d.add_argument("--output-size", type=int, default=128, help="square output map side")
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser("compare", help="check reference fixtures against this package",
                       description="Recompute CenterNet reference fixtures (.npz files or "
                                   "folders of them). Prints one line per mismatch, then "
                                   "'N passed, M failed'; exit status 0 only if none failed.")
    c.add_argument("paths", nargs="+", help="fixture files or folders")
    c.add_argument("-v", "--verbose", action="store_true", help="also print passing fixtures")
    c.set_defaults(func=cmd_compare)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo", *(argv or [])])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
