"""Read labelled speech corpora into one record type, counting every row that is skipped and why.

Readers return ``(clips, stats)``. A clip is kept only with a male/female label and an existing
file; everything else is counted in ``ReadStats.skipped`` by reason, so a user can see what a corpus
really contributed. Speaker ids are made comparable across corpora (LibriSpeech ids become
``librispeech_<id>``, the spelling the more-speakers manifests use), because splits group by speaker id
alone: the same person reached through two corpora must land on one side of a split.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from voicegender.errors import VoicegenderError

log = logging.getLogger(__name__)

GENDERS = ("female", "male")

# Older Common Voice releases say male/female; newer ones male_masculine/female_feminine.
_GENDER_SPELLINGS = {
    "male": "male",
    "female": "female",
    "m": "male",
    "f": "female",
    "male_masculine": "male",
    "female_feminine": "female",
}


@dataclass(frozen=True)
class Clip:
    """One labelled recording."""

    path: Path
    """Audio file."""
    gender: str
    """'male' or 'female'."""
    speaker: str | None
    """Speaker id, comparable across corpora; None when the corpus has none (Kaggle Common Voice)."""
    corpus: str
    """Short corpus name, e.g. 'librispeech', 'commonvoice-fa', 'vctk_samples'."""
    duration: float | None
    """Length in seconds from the file header or the corpus table; None when unknown."""
    attributes: tuple[tuple[str, str], ...] = ()
    """What a manifest says about the recording beyond its label (``DESCRIPTIVE_COLUMNS``, e.g.
    ``(("emotion", "anger"),)``); evaluation breaks its figures down by them."""


@dataclass
class ReadStats:
    """What a reader saw: rows read, clips kept and rows skipped by reason."""

    source: str
    """The folder or file that was read."""
    rows: int = 0
    """Rows (or audio files, for LibriSpeech) examined."""
    kept: int = 0
    """Clips returned."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Skipped rows by reason, e.g. {'gender blank': 5, 'missing file': 1}."""
    has_speakers: bool = True
    """False when clips carry no speaker id, so splits can only be by clip."""
    warnings: list[str] = field(default_factory=list)
    """Loud problems the user must see (also sent to logging.warning)."""

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def combine(self, other: ReadStats) -> ReadStats:
        """Stats of two reads together (for a folder of manifests or several --data options)."""
        return ReadStats(
            source=f"{self.source}; {other.source}",
            rows=self.rows + other.rows,
            kept=self.kept + other.kept,
            skipped=self.skipped + other.skipped,
            has_speakers=self.has_speakers and other.has_speakers,
            warnings=self.warnings + other.warnings,
        )

    def summary(self) -> str:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
        return f"{self.source}: {self.rows} rows, {self.kept} kept, skipped {{{reasons}}}"


@dataclass(frozen=True)
class ClipSummary:
    """Counts for a report: clips, speakers per gender and hours."""

    clips: int
    """Number of clips."""
    clips_by_gender: dict[str, int]
    """Clips per gender."""
    speakers_by_gender: dict[str, int]
    """Distinct speaker ids per gender (clips without a speaker id are not counted)."""
    no_speaker_clips: int
    """Clips with speaker None."""
    hours: float
    """Total duration in hours of the clips whose duration is known."""
    unknown_duration_clips: int
    """Clips with duration None (not in ``hours``)."""


def summarize(clips: Iterable[Clip]) -> ClipSummary:
    clips = list(clips)
    speakers: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        if clip.speaker is not None:
            speakers[clip.gender].add(clip.speaker)
    known = [c.duration for c in clips if c.duration is not None]
    return ClipSummary(
        clips=len(clips),
        clips_by_gender={g: sum(c.gender == g for c in clips) for g in GENDERS},
        speakers_by_gender={g: len(speakers[g]) for g in GENDERS},
        no_speaker_clips=sum(c.speaker is None for c in clips),
        hours=sum(known) / 3600.0,
        unknown_duration_clips=len(clips) - len(known),
    )


def normalise_gender(value: str | None) -> str | None:
    """'male' or 'female' for the spellings corpora use, None for anything else (other, blank...)."""
    return _GENDER_SPELLINGS.get((value or "").strip().lower())


def _gender_skip_reason(value: str | None) -> str:
    value = (value or "").strip().lower()
    return f"gender {value}" if value else "gender blank"


def _probe_duration(path: Path) -> float | None:
    """Length from the file header; None if the header can't be read (the audio loader rejects it later)."""
    try:
        return float(soundfile.info(str(path)).duration)
    except (soundfile.LibsndfileError, RuntimeError, OSError):
        return None


def _parse_seconds(value: str | None, scale: float = 1.0) -> float | None:
    try:
        seconds = float(value) * scale if value not in (None, "") else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


def _require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise VoicegenderError(f"{path}: {what} not found")
    if not path.is_dir():
        raise VoicegenderError(f"{path}: not a folder (expected {what})")


def _require_columns(path: Path, header: list[str] | None, required: Iterable[str]) -> None:
    missing = [c for c in required if c not in (header or [])]
    if missing:
        raise VoicegenderError(
            f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(header or []) or 'empty'})"
        )


@contextmanager
def _open_table(path: Path, delimiter: str) -> Iterator[tuple[list[str] | None, csv.DictReader]]:
    """(header, reader) for a CSV/TSV file; decoding and CSV problems become VoicegenderError."""
    if not path.is_file():
        raise VoicegenderError(f"{path}: file not found")
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            # Common Voice sentences contain bare quotes; its TSVs are unquoted.
            quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
            reader = csv.DictReader(fh, delimiter=delimiter, quoting=quoting)
            yield reader.fieldnames, reader
    except UnicodeDecodeError as exc:
        raise VoicegenderError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise VoicegenderError(f"{path}: malformed table ({exc})") from exc


def _drop_conflicting_speakers(clips: list[Clip], stats: ReadStats) -> list[Clip]:
    """Drops speakers labelled both male and female: such labels can't be trusted for either class."""
    genders: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        if clip.speaker is not None:
            genders[clip.speaker].add(clip.gender)
    conflicting = {s for s, g in genders.items() if len(g) > 1}
    if not conflicting:
        return clips
    kept = [c for c in clips if c.speaker not in conflicting]
    stats.skipped["speaker labelled both genders"] += len(clips) - len(kept)
    stats.warn(
        f"{stats.source}: dropped {len(conflicting)} speaker(s) labelled both male and female "
        f"({len(clips) - len(kept)} clips)"
    )
    return kept


def _finish(clips: list[Clip], stats: ReadStats) -> tuple[list[Clip], ReadStats]:
    clips = _drop_conflicting_speakers(clips, stats)
    stats.kept = len(clips)
    if stats.rows and not clips:
        stats.warn(f"{stats.source}: no usable clips ({stats.summary()})")
    return clips, stats


# --- Common Voice release (validated.tsv, other.tsv, clips/) ----------------------------------------

CV_DEFAULT_TABLES = ("validated",)


def read_common_voice(
    root: str | Path,
    tables: Iterable[str] = CV_DEFAULT_TABLES,
    *,
    corpus: str | None = None,
    probe_durations: bool = True,
) -> tuple[list[Clip], ReadStats]:
    """Reads a Common Voice release folder (``<table>.tsv`` + ``clips/``); speaker = ``client_id``.

    ``tables`` defaults to ``validated`` only: those clips passed community review. ``other`` holds
    clips nobody has reviewed yet (usually fine, sometimes silent or wrong); add it for more voices.
    A clip listed in two tables is read once. Durations come from ``clip_durations.tsv`` when the
    release has it, else from the file header. ``corpus`` defaults to ``commonvoice-<locale>``.
    """
    root = Path(root)
    _require_dir(root, "Common Voice folder")
    tables = list(tables)
    if not tables:
        raise VoicegenderError(f"{root}: no Common Voice tables chosen (e.g. validated, other)")
    clips_dir = root / "clips"
    _require_dir(clips_dir, "Common Voice clips folder")
    durations = _cv_clip_durations(root / "clip_durations.tsv")
    stats = ReadStats(source=str(root))
    clips: list[Clip] = []
    seen: set[str] = set()
    for table in tables:
        tsv = root / f"{table}.tsv"
        with _open_table(tsv, "\t") as (header, reader):
            _require_columns(tsv, header, ("client_id", "path", "gender"))
            for row in reader:
                stats.rows += 1
                name = (row["path"] or "").strip()
                if name in seen:
                    stats.skip("duplicate row")
                    continue
                seen.add(name)
                gender = normalise_gender(row["gender"])
                if gender is None:
                    stats.skip(_gender_skip_reason(row["gender"]))
                    continue
                speaker = (row["client_id"] or "").strip()
                if not speaker:
                    stats.skip("client_id blank")
                    continue
                path = clips_dir / name
                if not name or not path.is_file():
                    stats.skip("missing file")
                    continue
                duration = durations.get(name)
                if duration is None and probe_durations:
                    duration = _probe_duration(path)
                locale = (row.get("locale") or "").strip()
                name_of_corpus = corpus or (f"commonvoice-{locale}" if locale else "commonvoice")
                clips.append(Clip(path, gender, speaker, name_of_corpus, duration))
    return _finish(clips, stats)


def _cv_clip_durations(path: Path) -> dict[str, float]:
    """``clip_durations.tsv`` (clip, duration[ms]) of newer releases; empty if absent."""
    if not path.is_file():
        return {}
    durations = {}
    with _open_table(path, "\t") as (header, reader):
        if not header or len(header) < 2:
            return {}
        clip_col, ms_col = header[0], header[1]
        for row in reader:
            seconds = _parse_seconds(row.get(ms_col), 1e-3)
            if seconds is not None:
                durations[(row.get(clip_col) or "").strip()] = seconds
    return durations


# --- Kaggle Common Voice release (cv-*.csv + mp3s, no speaker ids) ---------------------------------

KAGGLE_DEFAULT_TABLES = ("cv-valid-train", "cv-valid-dev", "cv-valid-test")


def read_kaggle_common_voice(
    source: str | Path,
    tables: Iterable[str] | None = None,
    *,
    corpus: str = "commonvoice-kaggle",
    probe_durations: bool = True,
) -> tuple[list[Clip], ReadStats]:
    """Reads the Kaggle "Common Voice" release: ``cv-*.csv`` tables of ``filename,...,gender,...``.

    ``source`` is the release folder or one ``cv-*.csv`` file. For a folder, ``tables`` defaults to
    the ``cv-valid-*`` tables present (``cv-other-*`` hold unreviewed clips; add them by name).
    This release has NO speaker ids: clips get ``speaker=None`` and a warning says that splits of it
    can only be by clip, so one person's voice can be in both training and test data.
    """
    source = Path(source)
    if source.is_file():
        root, csv_files = source.parent, [source]
    else:
        _require_dir(source, "Kaggle Common Voice folder")
        root = source
        if tables is None:
            csv_files = [root / f"{t}.csv" for t in KAGGLE_DEFAULT_TABLES if (root / f"{t}.csv").is_file()]
            if not csv_files:
                raise VoicegenderError(f"{root}: no cv-valid-*.csv table found (Kaggle Common Voice)")
        else:
            csv_files = [root / (t if t.endswith(".csv") else f"{t}.csv") for t in tables]
    stats = ReadStats(source=str(source), has_speakers=False)
    clips: list[Clip] = []
    for table in csv_files:
        with _open_table(table, ",") as (header, reader):
            _require_columns(table, header, ("filename", "gender"))
            for row in reader:
                stats.rows += 1
                gender = normalise_gender(row["gender"])
                if gender is None:
                    stats.skip(_gender_skip_reason(row["gender"]))
                    continue
                path = _kaggle_audio_path(root, table, (row["filename"] or "").strip())
                if path is None:
                    stats.skip("missing file")
                    continue
                duration = _parse_seconds(row.get("duration"))
                if duration is None and probe_durations:
                    duration = _probe_duration(path)
                clips.append(Clip(path, gender, None, corpus, duration))
    stats.warn(
        f"{source}: Kaggle Common Voice has no speaker ids; splits of these {len(clips)} clips will be "
        "by clip, not by speaker, so test scores on them are optimistic"
    )
    return _finish(clips, stats)


def _kaggle_audio_path(root: Path, table: Path, filename: str) -> Path | None:
    # The Kaggle download nests each folder in itself: cv-valid-test/cv-valid-test/sample-000001.mp3.
    if not filename:
        return None
    for candidate in (root / filename, root / table.stem / filename):
        if candidate.is_file():
            return candidate
    return None


# --- LibriSpeech (SPEAKERS.TXT + <subset>/<speaker>/<chapter>/*.flac) --------------------------------


def read_librispeech(
    root: str | Path,
    subsets: Iterable[str] | None = None,
    *,
    corpus: str = "librispeech",
    probe_durations: bool = True,
) -> tuple[list[Clip], ReadStats]:
    """Reads a LibriSpeech folder; gender per speaker from ``SPEAKERS.TXT``.

    ``root`` is the folder holding ``SPEAKERS.TXT`` and the subset folders (all subsets present are
    read unless ``subsets`` names some), or one subset folder whose parent holds ``SPEAKERS.TXT``.
    Speaker ids are ``librispeech_<id>``.
    """
    root = Path(root)
    _require_dir(root, "LibriSpeech folder")
    if not (root / "SPEAKERS.TXT").is_file() and (root.parent / "SPEAKERS.TXT").is_file():
        root, subsets = root.parent, [root.name]
    speakers_txt = root / "SPEAKERS.TXT"
    sexes = _read_speakers_txt(speakers_txt)
    if subsets is None:
        subset_dirs = sorted(d for d in root.iterdir() if d.is_dir() and any(_speaker_dirs(d)))
    else:
        subset_dirs = [root / s for s in subsets]
        for d in subset_dirs:
            _require_dir(d, "LibriSpeech subset folder")
    if not subset_dirs:
        raise VoicegenderError(f"{root}: no LibriSpeech subset folders (<subset>/<speaker>/<chapter>/)")
    stats = ReadStats(source=str(root))
    clips: list[Clip] = []
    for subset in subset_dirs:
        for speaker_dir in sorted(_speaker_dirs(subset)):
            for path in sorted(speaker_dir.glob("*/*.flac")):
                stats.rows += 1
                sex = sexes.get(speaker_dir.name)
                if sex is None:
                    stats.skip("speaker not in SPEAKERS.TXT")
                    continue
                gender = normalise_gender(sex)
                if gender is None:
                    stats.skip(_gender_skip_reason(sex))
                    continue
                duration = _probe_duration(path) if probe_durations else None
                clips.append(Clip(path, gender, f"librispeech_{speaker_dir.name}", corpus, duration))
    return _finish(clips, stats)


def _speaker_dirs(subset: Path) -> Iterator[Path]:
    return (d for d in subset.iterdir() if d.is_dir() and d.name.isdigit())


def _read_speakers_txt(path: Path) -> dict[str, str]:
    """``id | sex | subset | minutes | name``; ';' starts a comment; names may contain '|'."""
    if not path.is_file():
        raise VoicegenderError(f"{path}: file not found (LibriSpeech speaker list)")
    sexes = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if line.startswith(";") or not line.strip():
                continue
            fields = [f.strip() for f in line.split("|", 4)]
            if len(fields) < 2 or not fields[0].isdigit():
                raise VoicegenderError(f"{path}:{number}: expected 'id | sex | ...', got {line.strip()!r}")
            sexes[fields[0]] = fields[1]
    if not sexes:
        raise VoicegenderError(f"{path}: no speakers listed")
    return sexes


# --- Plain manifest: path,gender,speaker_id[,...] --------------------------------------------------

MANIFEST_COLUMNS = ("path", "gender", "speaker_id")
DESCRIPTIVE_COLUMNS = ("emotion", "lang", "age", "accent")
"""Optional manifest columns kept on each clip (``Clip.attributes``) for per-group evaluation."""


def read_manifest(
    path: str | Path, *, corpus: str | None = None, probe_durations: bool = True
) -> tuple[list[Clip], ReadStats]:
    """Reads a CSV manifest with columns ``path,gender,speaker_id``; of the other columns only
    ``DESCRIPTIVE_COLUMNS`` are kept (as ``Clip.attributes``).

    Paths are relative to the manifest's folder (absolute paths are kept). A blank ``speaker_id``
    gives ``speaker=None`` (split by clip, with a warning). A ``duration`` column, if present, is
    used; otherwise the file header is probed. ``corpus`` defaults to the manifest's folder name.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    base = path.parent
    corpus = corpus or base.resolve().name
    stats = ReadStats(source=str(path))
    clips: list[Clip] = []
    with _open_table(path, ",") as (header, reader):
        _require_columns(path, header, MANIFEST_COLUMNS)
        for row in reader:
            stats.rows += 1
            gender = normalise_gender(row["gender"])
            if gender is None:
                stats.skip(_gender_skip_reason(row["gender"]))
                continue
            name = (row["path"] or "").strip()
            audio = base / name
            if not name or not audio.is_file():
                stats.skip("missing file")
                continue
            speaker = (row["speaker_id"] or "").strip() or None
            duration = _parse_seconds(row.get("duration"))
            if duration is None and probe_durations:
                duration = _probe_duration(audio)
            attributes = tuple(
                (column, value.strip())
                for column in DESCRIPTIVE_COLUMNS
                if (value := row.get(column) or "").strip()
            )
            clips.append(Clip(audio, gender, speaker, corpus, duration, attributes))
    no_speaker = sum(c.speaker is None for c in clips)
    if no_speaker:
        stats.has_speakers = False
        stats.warn(f"{path}: {no_speaker} clip(s) have no speaker_id; they can only be split by clip")
    return _finish(clips, stats)


# --- Choosing a reader ------------------------------------------------------------------------------

_KIND_ALIASES = {
    "librispeech": "librispeech",
    "cv": "commonvoice",
    "commonvoice": "commonvoice",
    "kaggle": "kaggle",
    "cv-kaggle": "kaggle",
    "commonvoice-kaggle": "kaggle",
    "manifest": "manifest",
}
KINDS = tuple(sorted(set(_KIND_ALIASES)))


def parse_spec(spec: str) -> tuple[str | None, Path]:
    """``'kind:path'`` -> (kind, path); a bare path -> (None, path). Kinds: see ``KINDS``."""
    kind, sep, rest = spec.partition(":")
    if sep and kind.lower() in _KIND_ALIASES:
        if not rest:
            raise VoicegenderError(f"--data {spec}: no path after '{kind}:'")
        return _KIND_ALIASES[kind.lower()], Path(rest).expanduser()
    if sep and re.fullmatch(r"[A-Za-z][\w-]+", kind) and not Path(spec).exists():
        raise VoicegenderError(f"--data {spec}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return None, Path(spec).expanduser()


# --- Evaluation-only corpora ---------------------------------------------------------------------------

EVAL_ONLY_FOLDERS = ("eval-only", "emodb")
"""Folder names (any path component, any case) that mark a corpus as evaluation-only."""
_EVAL_ONLY_README = re.compile(r"^\W*use:\s*evaluation[\s-]+only\b", re.IGNORECASE | re.MULTILINE)
"""A README line such as ``- Use: evaluation only (licence is non-commercial, ...)``. Only the "Use:"
line counts: a README may mention evaluation-only parts it left out (small-sets/african_phone)."""


def eval_only_reason(path: Path) -> str | None:
    """Why the dataset at ``path`` is evaluation-only (its folder name or its README), or None."""
    for parts in (path.parts, path.resolve().parts):
        named = [p for p in parts if p.lower() in EVAL_ONLY_FOLDERS]
        if named:
            return f"it is in a folder named {named[-1]!r}"
    folder = path if path.is_dir() else path.parent
    folders = [folder]
    if path.is_dir() and not (path / "manifest.csv").is_file():
        folders += sorted(m.parent for m in path.glob("*/manifest.csv"))  # a folder of manifests
    for candidate in folders:
        readme = candidate / "README.md"
        try:
            text = readme.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if _EVAL_ONLY_README.search(text):
            return f"{readme} says 'Use: evaluation only'"
    return None


def refuse_eval_only(spec: str, allow: bool) -> None:
    """VoicegenderError for a training dataset that is evaluation-only (licence forbids or doesn't
    state commercial use), unless ``allow``: a model trained on it must not be shipped.

    Evaluation-only means: a path component named ``eval-only`` or ``emodb`` (any case), or a
    README.md in the dataset's folder (or, for a folder of manifests, in one of its subfolders) with
    a line ``Use: evaluation only``.
    """
    _, path = parse_spec(str(spec))
    reason = eval_only_reason(path)
    if reason is None:
        return
    if allow:
        log.warning("training on evaluation-only data %s (%s): do not ship this model", path, reason)
        return
    raise VoicegenderError(
        f"{path}: evaluation-only data ({reason}), not for training a model that may be shipped; "
        "pass --allow-eval-only to train on it anyway"
    )


def detect_kind(path: Path) -> str:
    """The reader a folder or file needs, from its layout."""
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise VoicegenderError(f"{path}: not a dataset table (expected a .csv manifest or cv-*.csv)")
        with _open_table(path, ",") as (header, _):
            columns = set(header or [])
        if set(MANIFEST_COLUMNS) <= columns:
            return "manifest"
        if {"filename", "gender"} <= columns:
            return "kaggle"
        raise VoicegenderError(
            f"{path}: unknown table (need columns {','.join(MANIFEST_COLUMNS)} or filename,gender)"
        )
    _require_dir(path, "dataset folder")
    if (path / "SPEAKERS.TXT").is_file() or (path.parent / "SPEAKERS.TXT").is_file():
        return "librispeech"
    if (path / "validated.tsv").is_file():
        return "commonvoice"
    if (path / "manifest.csv").is_file():
        return "manifest"
    if any(path.glob("cv-*.csv")):
        return "kaggle"
    if any(path.glob("*/manifest.csv")):
        return "manifests"
    raise VoicegenderError(
        f"{path}: can't tell the dataset kind (no SPEAKERS.TXT, validated.tsv, manifest.csv, cv-*.csv "
        "or */manifest.csv); name it as kind:path"
    )


def read_any(
    spec: str | Path, *, cv_tables: Iterable[str] = CV_DEFAULT_TABLES, probe_durations: bool = True
) -> tuple[list[Clip], ReadStats]:
    """Reads a dataset named as ``kind:path`` or a bare path whose layout tells the kind.

    Kinds: ``librispeech``, ``cv``/``commonvoice``, ``kaggle``/``cv-kaggle``, ``manifest``. A folder
    whose subfolders each hold a ``manifest.csv`` (like ``more-speakers/``) reads them all.
    """
    kind, path = parse_spec(str(spec))
    kind = kind or detect_kind(path)
    if kind == "librispeech":
        return read_librispeech(path, probe_durations=probe_durations)
    if kind == "commonvoice":
        return read_common_voice(path, cv_tables, probe_durations=probe_durations)
    if kind == "kaggle":
        return read_kaggle_common_voice(path, probe_durations=probe_durations)
    if kind == "manifest" and (path.is_file() or (path / "manifest.csv").is_file()):
        return read_manifest(path, probe_durations=probe_durations)
    manifests = sorted(path.glob("*/manifest.csv")) if path.is_dir() else []
    if not manifests:
        raise VoicegenderError(f"{path}: no manifest.csv here or in its subfolders")
    clips, stats = read_manifest(manifests[0], probe_durations=probe_durations)
    for manifest in manifests[1:]:
        more, more_stats = read_manifest(manifest, probe_durations=probe_durations)
        clips += more
        stats = stats.combine(more_stats)
    return clips, stats
