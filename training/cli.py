"""``voicegender-train``: reproduce the shipped model, score it again, or train one on your own
labelled speech."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from voicegender.errors import VoicegenderError

from .paths import REPO, SHARED_DATA

ALLOW_EVAL_ONLY_HELP = "train on evaluation-only corpora anyway; such a model must not be shipped"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of steps")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voicegender-train", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    ship = sub.add_parser(
        "ship", help="train, quantise, evaluate and write the shipped model from ../shared/data"
    )
    ship.add_argument(
        "--out", type=Path, default=REPO / "models" / "voicegender.tflite", help="model file to write"
    )
    ship.add_argument(
        "--report-dir", type=Path, default=REPO / "models" / "report", help="evaluation report folder"
    )
    ship.add_argument("--cache-dir", type=Path, default=REPO / "cache", help="feature and baseline cache")
    ship.add_argument("--no-baseline", action="store_true", help="skip the original-system baseline")
    ship.add_argument(
        "--no-loco",
        action="store_true",
        help="skip the leave-one-corpus-out models (4 more trainings, about 50 minutes here)",
    )
    ship.add_argument(
        "--no-peer", action="store_true", help="skip the peer (inaSpeechSegmenter in its own venv, .venv-ina)"
    )

    ev = sub.add_parser(
        "evaluate",
        help="score an existing model (default: the shipped one) on its held-out test speakers and the "
        "evaluation-only sets; rewrite its report and model card (the model is not changed)",
    )
    ev.add_argument(
        "--model", type=Path, default=REPO / "models" / "voicegender.tflite", help="model file (.tflite)"
    )
    ev.add_argument(
        "--report-dir",
        type=Path,
        help="report folder holding model.keras and split.json (default: report/ beside the model)",
    )
    ev.add_argument("--card", type=Path, help="model card to write (default: MODEL_CARD.md beside the model)")
    ev.add_argument("--cache-dir", type=Path, default=REPO / "cache", help="baseline cache")
    ev.add_argument(
        "--data",
        action="append",
        metavar="KIND:PATH",
        help="the corpora the model was trained from (repeatable; default: the shipped model's)",
    )
    ev.add_argument(
        "--eval",
        action="append",
        metavar="KIND:PATH",
        help="evaluation-only dataset (repeatable; default without --data: the shipped model's)",
    )
    ev.add_argument("--no-baseline", action="store_true", help="skip the original-system baseline")
    ev.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        help="score inaSpeechSegmenter on the same clips (default: on for the shipped model's data)",
    )

    train = sub.add_parser(
        "train", help="train a model on your own data (Common Voice, LibriSpeech, CSV manifests)"
    )
    train.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="KIND:PATH",
        help="dataset (repeatable): librispeech:DIR, cv:DIR (Common Voice release), kaggle:DIR, manifest:CSV",
    )
    train.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="KIND:PATH",
        help="extra evaluation-only dataset (repeatable)",
    )
    train.add_argument(
        "--out", type=Path, required=True, help="model file to write (.tflite; metadata .json beside it)"
    )
    train.add_argument("--report-dir", type=Path, help="evaluation report folder (default: beside the model)")
    train.add_argument("--cache-dir", type=Path, default=Path("cache"))
    train.add_argument("--max-clips-per-speaker", type=int, default=None)
    train.add_argument(
        "--steps",
        type=_positive,
        help="train exactly this many gradient steps instead of the epochs (smoke tests)",
    )
    train.add_argument("--variants", type=int, help="augmented copies per clip")
    train.add_argument("--allow-eval-only", action="store_true", help=ALLOW_EVAL_ONLY_HELP)

    cv = sub.add_parser(
        "crossval",
        help="k-fold speaker cross-validation of the training recipe (default: the shipped model's data)",
    )
    cv.add_argument("--k", type=int, default=5, help="number of speaker folds (default: %(default)s)")
    cv.add_argument(
        "--data",
        action="append",
        metavar="KIND:PATH",
        help="dataset (repeatable) instead of the shipped model's training corpora",
    )
    cv.add_argument(
        "--eval", action="append", metavar="KIND:PATH", help="evaluation-only dataset (repeatable)"
    )
    cv.add_argument(
        "--report-dir", type=Path, default=REPO / "models" / "report", help="where crossval.md goes"
    )
    cv.add_argument("--cache-dir", type=Path, default=REPO / "cache", help="feature cache")
    cv.add_argument(
        "--steps", type=_positive, help="train each fold exactly this many gradient steps (smoke tests)"
    )
    cv.add_argument("--variants", type=int, help="augmented copies per clip")
    cv.add_argument("--allow-eval-only", action="store_true", help=ALLOW_EVAL_ONLY_HELP)
    for q in (ship, cv, ev):
        q.add_argument(
            "--data-dir",
            type=Path,
            default=Path(os.environ.get("VOICEGENDER_DATA_DIR", SHARED_DATA)),
        )
    for q in (train, cv, ev):
        q.add_argument(
            "--cv-tables",
            help="Common Voice tables to read, comma-separated (validated,other; default: validated, "
            "or the shipped model's tables for its own corpora)",
        )
    for q in (ship, train, cv):
        q.add_argument("--epochs", type=int, help="override the number of epochs")
        q.add_argument("--seed", type=int, help="override the training seed")
    for q in (ship, train, cv, ev):
        q.add_argument(
            "-v", "--verbose", action="store_true", help="debug logging, TensorFlow's own messages included"
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command in ("train", "crossval"):
            from .datasets import refuse_eval_only

            for spec in args.data or []:  # before TensorFlow loads: a refusal comes at once
                refuse_eval_only(spec, args.allow_eval_only)
        from .tflog import quiet_tensorflow

        quiet_tensorflow(args.verbose)  # before TensorFlow is imported
        from . import ship

        if args.command == "evaluate":
            return _evaluate(args, ship)
        settings = ship.ShipSettings()
        train = settings.train
        if args.epochs is not None:
            train = dataclasses.replace(train, epochs=args.epochs)
        if args.seed is not None:
            train = dataclasses.replace(train, seed=args.seed)
        settings = dataclasses.replace(settings, train=train)
        if args.command == "ship":
            ship.run(
                args.data_dir,
                args.out,
                args.report_dir,
                args.cache_dir,
                settings,
                baseline=not args.no_baseline,
                verbose=args.verbose,
                peer=not args.no_peer,
                loco=not args.no_loco,
            )
        elif args.command == "crossval":
            from . import crossval

            if args.variants is not None:
                settings = dataclasses.replace(settings, variants=args.variants)
            if args.data:
                train_specs, cv_tables = args.data, _tables(args.cv_tables or "validated")
                eval_specs = {spec: spec for spec in args.eval or []}
            else:  # the shipped model's recipe
                sources, shipped_eval = ship.shipped_specs(args.data_dir)
                train_specs = [spec for spec, _licence in sources]
                eval_specs = {spec: spec for spec in args.eval} if args.eval else shipped_eval
                cv_tables = _tables(args.cv_tables) if args.cv_tables else ship.SHIP_CV_TABLES
            crossval.run(
                train_specs,
                eval_specs,
                args.k,
                args.report_dir,
                args.cache_dir,
                settings,
                cv_tables,
                args.steps,
            )
        else:
            if args.variants is not None:
                settings = dataclasses.replace(settings, variants=args.variants)
            if args.max_clips_per_speaker is not None:
                settings = dataclasses.replace(
                    settings,
                    split=dataclasses.replace(
                        settings.split, max_clips_per_speaker=args.max_clips_per_speaker
                    ),
                )
            ship.run_custom(
                args.data,
                args.eval,
                args.out,
                args.report_dir or args.out.parent / "report",
                args.cache_dir,
                settings,
                cv_tables=_tables(args.cv_tables or "validated"),
                steps=args.steps,
                verbose=args.verbose,
            )
    except VoicegenderError as exc:
        print(f"voicegender-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _evaluate(args: argparse.Namespace, ship) -> int:
    model = args.model
    if args.data:
        train_specs, cv_tables = args.data, _tables(args.cv_tables or "validated")
        eval_specs = {spec: spec for spec in args.eval or []}
        npz = None
    else:  # the shipped model's corpora
        sources, shipped_eval = ship.shipped_specs(args.data_dir)
        train_specs = [spec for spec, _licence in sources]
        eval_specs = {spec: spec for spec in args.eval} if args.eval else shipped_eval
        cv_tables = _tables(args.cv_tables) if args.cv_tables else ship.SHIP_CV_TABLES
        npz = None if args.no_baseline else ship.melmean_npz(args.data_dir)
    ship.evaluate_existing(
        model,
        args.report_dir or model.parent / "report",
        args.card or model.parent / "MODEL_CARD.md",
        args.cache_dir,
        train_specs,
        eval_specs,
        cv_tables,
        baseline_npz=npz,
        verbose=args.verbose,
        peer=not args.data if args.peer is None else args.peer,
    )
    return 0


def _tables(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


if __name__ == "__main__":
    sys.exit(main())
