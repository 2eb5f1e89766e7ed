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
    """The whole pipeline on a built-in COCO-style dataset (see :mod:`centertargets.demo`)."""
    from .demo import run_demo

    run_demo(args.out, images=args.images, workers=args.workers,
             train_steps=args.steps, seed=args.seed)
    return 0


def cmd_track_demo(args: argparse.Namespace) -> int:
    """CenterTrack's loop on built-in videos (see :mod:`centertargets.track_demo`)."""
    from .track_demo import run_track_demo

    r = run_track_demo(args.out, videos=args.videos, frames=args.frames, workers=args.workers,
                       seed=args.seed)
    return 0 if r["oracle"].id_switches == 0 else 1


def cmd_scene(args: argparse.Namespace) -> int:
    """Encode a built-in synthetic scene for both tasks and print what came out."""
    from .augment import AugmentParams, annotations_to_output
    from .tasks import CtdetConfig, CtdetEncoder, MultiPoseConfig, MultiPoseEncoder
    from .coco import COCO_CATEGORY_IDS
    from .synthetic import detection_scene, person_scene

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
    if args.save:
        from .visualize import render_targets, save_png

        save_png(args.save, render_targets(t, cfg))
        print(f"  picture of the pose targets written to {args.save}")

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
    unsupported: dict[str, int] = {}
    for p in tqdm(paths, desc="fixtures", unit="file", disable=None, file=sys.stderr):
        if not p.exists():
            print(f"FAIL  {p}: no such file or folder")
            failed += 1
            continue
        r = check_fixture(p)
        if r.unsupported:
            unsupported[r.unsupported] = unsupported.get(r.unsupported, 0) + 1
            if args.verbose:
                print(r.line())
        elif r.ok:
            passed += 1
            if args.verbose:
                print(r.line())
        else:
            failed += 1
            print(r.line())
    if not paths:
        print("no .npz fixtures found in " + ", ".join(args.paths))
    if unsupported:
        print(f"{sum(unsupported.values())} fixtures of tasks not supported yet, not checked ("
              + ", ".join(f"{t}: {n}" for t, n in sorted(unsupported.items())) + ")")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


def _config_for(coco, task: str | None, output_size: int, max_objs: int | None):
    """A config fitting a COCO file: its most specific task (multi_pose for a file with
    keypoints), or ``task``."""
    from . import tasks

    unit = tasks.get(task) if task else tasks.for_coco(coco)
    return unit.config_for_coco(coco, (output_size, output_size), max_objs)


def cmd_audit(args: argparse.Namespace) -> int:
    """Encode every image of a COCO file and count what the targets lose."""
    from .audit import audit, print_audit
    from .coco import CocoDataset
    from .synthetic import person_scene, to_coco
    from .tasks import unit_of

    if args.annotations:
        coco = CocoDataset.load(args.annotations)
    else:
        coco = CocoDataset(to_coco([person_scene(i, num_people=3 + i % 40) for i in range(200)]))
        print("no annotation file given: auditing 200 built-in synthetic pose images")
    cfg = _config_for(coco, args.task, args.output_size, args.max_objs)
    totals, worst = audit(coco, cfg, args.train, args.image_root)
    n = len(coco) if not (args.train and unit_of(cfg).train_filter) else \
        sum(coco.num_annotations(i) > 0 for i in coco.image_ids)
    print_audit(totals, worst, cfg, n, args.train, args.top)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Write a picture of one image's targets."""
    from .coco import CocoDataset
    from .synthetic import person_scene, to_coco
    from .tasks import unit_of
    from .visualize import save_png

    coco = CocoDataset.load(args.annotations) if args.annotations else \
        CocoDataset(to_coco([person_scene(args.seed, num_people=6)]))
    cfg = _config_for(coco, args.task, args.output_size, None)
    unit = unit_of(cfg)
    ds = unit.dataset_class()(coco, cfg, image_root=args.image_root)
    if not 0 <= args.index < len(ds):
        raise IndexError(f"--index {args.index}: expected 0 <= index < {len(ds)} (images in "
                         "the file)")
    params = ds.params(args.index)
    item = ds.item(args.index, params)
    annotations = None if unit.video else unit.prepared(
        ds.annotations(args.index), params, tuple(int(v) for v in item["meta"]["output_size"]),
        ds.config)
    save_png(args.out, unit.render(item, ds.config, coco, annotations))
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .tasks import names

    p = argparse.ArgumentParser(
        prog="centertargets",
        description="Fast, exact CenterNet training targets. Start with 'centertargets demo' "
                    "(the whole pipeline on built-in data) or 'centertargets COMMAND --help'.")
    from . import __version__
    p.add_argument("--version", action="version", version=f"centertargets {__version__}")
    sub = p.add_subparsers(dest="command")

    d = sub.add_parser("demo", help="the whole pipeline on a built-in dataset (about a minute)",
                       description="Write a synthetic COCO keypoint dataset (JPEGs + json), audit "
                                   "it, load it through CenterNetDataset in a DataLoader, train a "
                                   "tiny network on the CPU, decode and score against the "
                                   "annotations, and write pictures.")
    d.add_argument("--out", default="centertargets-demo",
                   help="output folder (default: ./centertargets-demo)")
    d.add_argument("--images", type=_positive_int, default=48, help="images to write (default 48)")
    d.add_argument("--workers", type=_non_negative_int, default=2,
                   help="DataLoader workers (default 2)")
    d.add_argument("--steps", type=_positive_int, default=150,
                   help="training steps, batches of 8 (default 150)")
    d.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("track-demo", help="CenterTrack's tracking loop on built-in videos "
                       "(seconds)",
                       description="Write synthetic videos of walking people (JPEGs + a COCO "
                                   "video json), audit them, load two-frame tracking samples "
                                   "through TrackingDataset in a DataLoader, track every video "
                                   "with the oracle decode and CenterTrack's greedy tracker, "
                                   "report MOT counts (0 identity switches expected) and write "
                                   "pictures. Exit status 1 if the oracle switches an identity.")
    t.add_argument("--out", default="centertargets-track-demo",
                   help="output folder (default: ./centertargets-track-demo)")
    t.add_argument("--videos", type=_positive_int, default=3, help="videos (default 3)")
    t.add_argument("--frames", type=_positive_int, default=8,
                   help="frames per video (default 8)")
    t.add_argument("--workers", type=_non_negative_int, default=2,
                   help="DataLoader workers (default 2)")
    t.add_argument("--seed", type=int, default=0, help="video seed (default 0)")
    t.set_defaults(func=cmd_track_demo)

    e = sub.add_parser("scene", help="encode one built-in scene per task and print the targets")
    e.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    e.add_argument("--people", type=_positive_int, default=8,
                   help="persons in the pose scene (default 8)")
    e.add_argument("--objects", type=_positive_int, default=30,
                   help="objects in the detection scene (default 30)")
    e.add_argument("--output-size", type=_positive_int, default=128,
                   help="square output map side (default 128)")
    e.add_argument("--save", metavar="PNG", help="also write a picture of the pose targets")
    e.set_defaults(func=cmd_scene)

    a = sub.add_parser("audit", help="count what the targets of a COCO file lose",
                       description="Encode every image of a COCO annotation file and report "
                                   "objects dropped beyond max_objs, boxes clipped to nothing, "
                                   "centre collisions and keypoints outside the output map.")
    a.add_argument("annotations", nargs="?", help="COCO json (default: built-in synthetic set)")
    a.add_argument("--task", choices=names(),
                   help="default: multi_pose if the file has keypoints")
    a.add_argument("--output-size", type=_positive_int, default=128,
                   help="square output map side (default 128)")
    a.add_argument("--max-objs", type=_positive_int,
                   help="default: 128 (ctdet) or 32 (multi_pose)")
    a.add_argument("--train", action="store_true",
                   help="with CenterNet's training augmentation (default: validation transform)")
    a.add_argument("--image-root", help="image folder, to read sizes missing from the json")
    a.add_argument("--top", type=_non_negative_int, default=5,
                   help="list this many worst images (default 5)")
    a.set_defaults(func=cmd_audit)

    r = sub.add_parser("render", help="write a PNG picture of one image's targets",
                       description="Build one image's targets with the task the file fits "
                                   "(or --task) and draw them: the heatmaps with what the "
                                   "per-object targets encode, over the network input when "
                                   "--image-root is given.")
    r.add_argument("annotations", nargs="?", help="COCO json (default: a synthetic scene)")
    r.add_argument("--task", choices=names(),
                   help="default: the most specific task the file fits (multi_pose with "
                        "keypoints, tracking with videos, ...)")
    r.add_argument("--index", type=_non_negative_int, default=0,
                   help="image index in the file (default 0)")
    r.add_argument("--seed", type=int, default=0, help="synthetic scene seed (default 0)")
    r.add_argument("--output-size", type=_positive_int, default=128,
                   help="square output map side (default 128)")
    r.add_argument("--out", default="targets.png", help="PNG path (default targets.png)")
    r.add_argument("--image-root", help="image folder: the picture shows the image under the "
                                        "heatmaps (and sizes missing from the json are read "
                                        "from it)")
    r.set_defaults(func=cmd_render)

    c = sub.add_parser("compare", help="check reference fixtures against this package",
                       description="Recompute CenterNet reference fixtures (.npz files or "
                                   "folders of them). Prints one line per mismatch, then "
                                   "'N passed, M failed'; exit status 0 only if none failed.")
    c.add_argument("paths", nargs="+", help="fixture files or folders")
    c.add_argument("-v", "--verbose", action="store_true",
                   help="also print passing fixtures (default: only mismatches)")
    c.set_defaults(func=cmd_compare)
    return p


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:          # a bare `centertargets`: say what there is, write nothing
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except FileNotFoundError as exc:
        name = exc.filename or str(exc)
        print(f"centertargets {args.command}: {name}: no such file (check the path)",
              file=sys.stderr)
        return 2
    except (ValueError, IndexError, KeyError, OSError) as exc:
        # a user's mistake (a file that is not COCO, an index out of range, a bad value): one
        # line naming it, no traceback; the messages name the field and what was expected
        print(f"centertargets {args.command}: {exc}", file=sys.stderr)
        return 2
