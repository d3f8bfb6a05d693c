"""The data verbs: ``make-synthetic``, ``import-emer``, ``import-videos``, ``split``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(sub) -> None:
    """Register the data verbs."""
    ms = sub.add_parser(
        "make-synthetic", help="write a synthetic corpus of real mp4 clips with gold labels",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Generate synthetic emotion clips: rendered faces whose expression varies, espeak-ng
speech whose words and prosody vary, subtitles, EMER-style gold descriptions and labels.
The emotion cue is placed in one modality (--cue): the others stay neutral, so a model
must read that modality to recover the label. Deterministic for a seed; re-running
skips complete clips. Writes DIR/videos/*.mp4, DIR/manifest.jsonl, DIR/synthetic.json.

With --coarse/--fine it writes a two-stage corpus instead (like EMER-Coarse +
EMER-Fine): DIR/coarse/manifest.jsonl and DIR/fine/manifest.jsonl with a seeded
train/test split in DIR/fine/split.csv.""")
    ms.add_argument("--out", required=True, help="output folder")
    ms.add_argument("--n", type=int, default=100, help="number of clips (default: %(default)s)")
    ms.add_argument("--cue", choices=("video", "audio", "text", "all", "mixed"), default="all",
                    help="modality carrying the emotion; 'mixed' rotates the four (default: %(default)s)")
    ms.add_argument("--emotions", help="comma-separated emotions (default: neutral, happy, sad, angry, "
                                       "surprised, worried, disgusted)")
    ms.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ms.add_argument("--duration", type=float, nargs=2, default=(3.0, 6.0), metavar=("MIN", "MAX"),
                    help="clip length range in seconds (default: 3 6)")
    ms.add_argument("--size", type=int, default=224, help="frame size in pixels (default: %(default)s)")
    ms.add_argument("--fps", type=int, default=10, help="frames per second (default: %(default)s)")
    ms.add_argument("--split", help="split value written into every sample (e.g. train)")
    ms.add_argument("--style", choices=("fine", "coarse"), default="fine",
                    help="description style: full EMER-like or short coarse (default: %(default)s)")
    ms.add_argument("--workers", type=int, help="generation processes (default: CPU count)")
    ms.add_argument("--coarse", type=int, help="two-stage corpus: clips in the coarse pool")
    ms.add_argument("--fine", type=int, help="two-stage corpus: clips in the fine set")
    ms.add_argument("--test-fraction", type=float, default=0.2,
                    help="two-stage corpus: share of the fine set held out as test (default: %(default)s)")
    ms.set_defaults(func=cmd_make_synthetic)

    ie = sub.add_parser("import-emer", help="EMER-Fine release files -> manifest (+ seeded split)",
                        description="Build a manifest from EMER-Fine's final-EMER-reason.csv (gold "
                                    "descriptions), the gold label CSV and optionally subtitles.csv and "
                                    "a folder of the MER videos (under their EULA; missing videos allowed).")
    ie.add_argument("--reason", required=True, help="final-EMER-reason.csv (name,chinese,english)")
    ie.add_argument("--labels", required=True, help="gold labels CSV (name,openset), e.g. check-openset.csv")
    ie.add_argument("--subtitles", help="subtitles.csv (name,chinese,english)")
    ie.add_argument("--video-dir", help="folder holding <name>.mp4/.avi/...")
    ie.add_argument("--out", required=True, help="manifest to write (.jsonl or .csv)")
    ie.add_argument("--split-out", help="also write a seeded 266/66 train/test split CSV here and "
                                        "store the split in the manifest")
    ie.add_argument("--split-seed", type=int, default=0, help="split seed (default: %(default)s)")
    ie.set_defaults(func=cmd_import_emer)

    iv = sub.add_parser("import-videos", help="a folder of videos (+ subtitle CSV) -> manifest",
                        description="One sample per video, named by file stem; subtitles from a "
                                    "MER2024-layout CSV (name,chinese,english). With --asr, videos "
                                    "without a subtitle get the transcript of their speech "
                                    "(subtitle_source=asr; transcripts cached in "
                                    "OUT-stem.transcripts/).")
    iv.add_argument("--video-dir", required=True, help="folder of videos")
    iv.add_argument("--subtitles", help="subtitle CSV (name,chinese,english)")
    iv.add_argument("--recursive", action="store_true", help="also search subfolders")
    iv.add_argument("--no-check-media", action="store_true",
                    help="do not open each video's header through the media gate (by default "
                         "files it refuses are left out with a warning naming the reason)")
    iv.add_argument("--out", required=True, help="manifest to write (.jsonl or .csv)")
    from affectgpt.cli.asr import add_asr_options

    add_asr_options(iv, default=False)
    iv.set_defaults(func=cmd_import_videos)

    sp = sub.add_parser("split", help="seeded train/test split of a manifest, written down",
                        description="Assign each sample to train or test from a hash of (seed, name): "
                                    "independent of order and platform. Writes name,split CSV plus a "
                                    "<file>.meta.json sidecar (seed, sizes, digest of the names).")
    sp.add_argument("--manifest", required=True, help="manifest to split")
    sp.add_argument("--test-size", required=True, type=float,
                    help="test samples: a count (66) or a fraction (0.2)")
    sp.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    sp.add_argument("--out", required=True, help="split CSV to write")
    sp.add_argument("--apply-to", help="also write the manifest with the split filled in here")
    sp.set_defaults(func=cmd_split)


def cmd_make_synthetic(args: argparse.Namespace) -> int:
    from affectgpt.data.synthetic import DEFAULT_EMOTIONS, make_synthetic, make_synthetic_corpus

    emotions = tuple(e.strip() for e in args.emotions.split(",")) if args.emotions else DEFAULT_EMOTIONS
    common = dict(emotions=emotions, seed=args.seed, duration=tuple(args.duration), size=args.size,
                  fps=args.fps, workers=args.workers)
    if args.coarse is not None or args.fine is not None:
        corpus = make_synthetic_corpus(args.out, coarse=args.coarse or 0, fine=args.fine or 0,
                                       test_fraction=args.test_fraction, **common)
        print(f"coarse: {corpus.coarse_manifest} ({len(corpus.coarse)} clips)\n"
              f"fine:   {corpus.fine_manifest} ({len(corpus.fine)} clips), split {corpus.split_file}")
    else:
        samples = make_synthetic(args.out, args.n, cue=args.cue, split=args.split, style=args.style, **common)
        print(f"{len(samples)} clips; manifest {Path(args.out) / 'manifest.jsonl'}")
    return 0


def cmd_import_emer(args: argparse.Namespace) -> int:
    from affectgpt.data.importers import import_emer_fine
    from affectgpt.data.manifest import media_report, write_manifest
    from affectgpt.data.splits import apply_split, emer_fine_split, write_split

    samples = import_emer_fine(args.reason, args.labels, args.subtitles, args.video_dir)
    if args.split_out:
        assignment = emer_fine_split([s.name for s in samples], seed=args.split_seed)
        write_split(args.split_out, assignment, args.split_seed, test_size=66, source=str(args.reason))
        samples = apply_split(samples, assignment)
    write_manifest(samples, args.out)
    print(f"wrote {args.out}: {media_report(samples)}")
    return 0


def cmd_import_videos(args: argparse.Namespace) -> int:
    from affectgpt.cli.asr import fill_subtitles
    from affectgpt.data.importers import import_video_folder
    from affectgpt.data.manifest import media_report, write_manifest

    samples = import_video_folder(args.video_dir, args.subtitles, recursive=args.recursive,
                                  check_media=not args.no_check_media)
    stem = Path(args.out).with_suffix("")
    samples = fill_subtitles(samples, args, stem.parent / f"{stem.name}.transcripts")
    write_manifest(samples, args.out)
    print(f"wrote {args.out}: {media_report(samples)}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from affectgpt.data.manifest import read_manifest, write_manifest
    from affectgpt.data.splits import apply_split, seeded_split, split_sizes, write_split

    samples = read_manifest(args.manifest)
    size = int(args.test_size) if args.test_size >= 1 else args.test_size
    assignment = seeded_split([s.name for s in samples], size, args.seed)
    write_split(args.out, assignment, args.seed, test_size=size, source=str(args.manifest))
    if args.apply_to:
        write_manifest(apply_split(samples, assignment), args.apply_to)
    print(f"wrote {args.out}: {split_sizes(assignment)}")
    return 0
