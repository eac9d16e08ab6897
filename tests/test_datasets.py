"""Corpus readers: counts on the real shared data, and every kind of bad row or bad input.

Expected counts on the shared data were made once, independently of the readers, with shell tools:
- commonvoice-fa: ``tail -n +2 validated.tsv | awk -F'\\t' '{print $7}' | sort | uniq -c`` -> 33 male,
  15 blank (48 rows); other.tsv -> 89 male, 5 female (94 rows); distinct client_id ($1) with a gender:
  validated 6 (all male); validated+other 7 male, 1 female.
- commonvoice-kaggle: cv-valid-test.csv has 15 rows, all gender=male, 15 mp3s present.
- LibriSpeech: ``find -name '*.flac' | wc -l`` -> 263 files in 254 speaker folders; joining the folder
  names with SPEAKERS.TXT -> 127 F, 127 M speakers; 131 F / 132 M clips; train-clean-360 holds
  speakers 16 (F), 22 (F), 17 (M) with 6 clips.
- emodb/manifest.csv: 535 rows, 302 female / 233 male, speaker_id 5 female / 5 male.
- more-speakers/*/manifest.csv: 21 + 4 + 37 = 62 rows, 21 female / 41 male clips, 5 F / 6 M speakers.
- The Ogg Opus sets, from ``awk -F, 'FNR>1 {sub(/\\r$/, ""); ...}' <folder>/*/manifest.csv`` ($2 gender,
  $3 speaker_id; the manifests have CRLF line ends): commonvoice 2,484 rows, 595 F / 1,889 M clips,
  410 F / 1,278 M speakers, 59 distinct lang values, cv61-english 61 of 62 rows with an age; speechocean762
  1,249 rows, 625 F / 624 M clips, 125 / 125 speakers, an age (6-43) on every row; small-sets 82 rows,
  13 F / 69 M clips, 2 F / 8 M speakers, an accent on 6 + 60 + 10 = 76 rows (cmu_arctic_samples,
  fsdd_digits, vctk_p239); eval-only 1,670 rows, 655 F / 1,015 M clips, 85 F / 130 M speakers. No other
  gender values occur in these manifests.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicegender.errors import VoicegenderError
from voicegender_training.audio_decode import load_batch
from voicegender_training.datasets import (
    Clip,
    eval_only_reason,
    normalise_gender,
    parse_spec,
    read_any,
    read_common_voice,
    read_kaggle_common_voice,
    read_librispeech,
    read_manifest,
    refuse_eval_only,
    summarize,
)

CV_HEADER = (
    "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment\n"
)


def _wav(path: Path, seconds: float = 0.25, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * rate), dtype=np.float32), rate)
    return path


def _speakers(clips: list[Clip], gender: str) -> int:
    return len({c.speaker for c in clips if c.gender == gender})


def _assert_one_line_naming(exc: pytest.ExceptionInfo[VoicegenderError], path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


# --- real shared data -------------------------------------------------------------------------------


def test_common_voice_validated_only_by_default(data_dir: Path) -> None:
    clips, stats = read_common_voice(data_dir / "commonvoice-fa")
    assert (stats.rows, stats.kept, dict(stats.skipped)) == (48, 33, {"gender blank": 15})
    assert len(clips) == 33
    assert (_speakers(clips, "male"), _speakers(clips, "female")) == (6, 0)
    assert {c.corpus for c in clips} == {"commonvoice-fa"}
    assert all(c.path.is_file() and c.path.parent.name == "clips" for c in clips)
    assert all(c.duration is not None and 1.0 < c.duration < 8.0 for c in clips)
    assert stats.has_speakers


def test_common_voice_with_other_table(data_dir: Path) -> None:
    clips, stats = read_common_voice(data_dir / "commonvoice-fa", ("validated", "other"))
    assert (stats.rows, stats.kept, dict(stats.skipped)) == (142, 127, {"gender blank": 15})
    assert Counter(c.gender for c in clips) == {"male": 122, "female": 5}
    assert (_speakers(clips, "male"), _speakers(clips, "female")) == (7, 1)


def test_kaggle_common_voice_has_no_speakers_and_says_so(data_dir: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        clips, stats = read_kaggle_common_voice(data_dir / "commonvoice-kaggle")
    assert (stats.rows, stats.kept, dict(stats.skipped)) == (15, 15, {})
    assert all(c.speaker is None and c.gender == "male" for c in clips)
    assert all(c.path.is_file() and c.path.suffix == ".mp3" for c in clips)
    assert not stats.has_speakers
    assert any("no speaker ids" in w for w in stats.warnings)
    assert any("no speaker ids" in r.getMessage() for r in caplog.records)


def test_librispeech_counts(data_dir: Path) -> None:
    clips, stats = read_librispeech(data_dir / "LibriSpeech")
    assert (stats.rows, stats.kept, dict(stats.skipped)) == (263, 263, {})
    assert Counter(c.gender for c in clips) == {"female": 131, "male": 132}
    assert (_speakers(clips, "female"), _speakers(clips, "male")) == (127, 127)
    assert all(c.speaker.startswith("librispeech_") for c in clips)
    # The speaker id is the folder two levels up (<speaker>/<chapter>/<utt>.flac).
    assert all(c.speaker == f"librispeech_{c.path.parent.parent.name}" for c in clips)
    assert all(c.duration is not None and 1.5 < c.duration < 25 for c in clips)


def test_librispeech_subset_folder(data_dir: Path) -> None:
    clips, stats = read_librispeech(data_dir / "LibriSpeech" / "train-clean-360")
    assert stats.kept == 6
    assert {c.speaker: c.gender for c in clips} == {
        "librispeech_16": "female",
        "librispeech_22": "female",
        "librispeech_17": "male",
    }


def test_emodb_manifest(data_dir: Path) -> None:
    clips, stats = read_manifest(data_dir / "emodb" / "manifest.csv")
    assert (stats.rows, stats.kept, dict(stats.skipped)) == (535, 535, {})
    assert Counter(c.gender for c in clips) == {"female": 302, "male": 233}
    assert (_speakers(clips, "female"), _speakers(clips, "male")) == (5, 5)
    assert {c.corpus for c in clips} == {"emodb"}
    assert all(c.duration == pytest.approx(2.0) for c in clips)
    # The emotion column is kept for the report's per-emotion figures.
    assert Counter(dict(c.attributes)["emotion"] for c in clips) == {
        "anger": 127, "boredom": 81, "disgust": 46, "fear": 69, "happiness": 71, "neutral": 79, "sadness": 62,
    }  # fmt: skip


def test_read_any_detects_every_shared_layout(data_dir: Path) -> None:
    expected = {
        "LibriSpeech": (263, "librispeech"),
        "commonvoice-fa": (33, "commonvoice-fa"),
        "commonvoice-kaggle": (15, "commonvoice-kaggle"),
        "commonvoice-kaggle/cv-valid-test.csv": (15, "commonvoice-kaggle"),
        "emodb": (535, "emodb"),
        "more-speakers/vctk_samples/manifest.csv": (37, "vctk_samples"),
    }
    for name, (n, corpus) in expected.items():
        clips, stats = read_any(str(data_dir / name))
        assert (len(clips), stats.kept) == (n, n), name
        assert {c.corpus for c in clips} == {corpus}, name


def test_read_any_folder_of_manifests(data_dir: Path) -> None:
    clips, stats = read_any(data_dir / "more-speakers")
    assert (stats.rows, stats.kept) == (62, 62)
    assert Counter(c.gender for c in clips) == {"female": 21, "male": 41}
    assert (_speakers(clips, "female"), _speakers(clips, "male")) == (5, 6)
    assert {c.corpus for c in clips} == {"aishell3_sample", "librispeech_testclean_samples", "vctk_samples"}


def test_read_any_explicit_kinds(data_dir: Path) -> None:
    assert len(read_any(f"librispeech:{data_dir / 'LibriSpeech'}")[0]) == 263
    assert len(read_any(f"cv:{data_dir / 'commonvoice-fa'}")[0]) == 33
    assert len(read_any(f"cv:{data_dir / 'commonvoice-fa'}", cv_tables=("validated", "other"))[0]) == 127
    assert len(read_any(f"kaggle:{data_dir / 'commonvoice-kaggle'}")[0]) == 15
    assert len(read_any(f"manifest:{data_dir / 'emodb' / 'manifest.csv'}")[0]) == 535


def test_summarize_real_librispeech(data_dir: Path) -> None:
    summary = summarize(read_librispeech(data_dir / "LibriSpeech")[0])
    assert summary.clips == 263
    assert summary.speakers_by_gender == {"female": 127, "male": 127}
    assert summary.unknown_duration_clips == 0
    assert 0.85 < summary.hours < 0.95  # 3276.5 s of FLAC, summed from the file headers


# --- synthetic corpora: every skip reason --------------------------------------------------------------


def _cv_release(root: Path) -> Path:
    rows = [
        ("a", "a1.mp3", "male"),
        ("a", "a2.mp3", "male_masculine"),
        ("b", "b1.mp3", "female_feminine"),
        ("b", "b2.mp3", "FEMALE"),
        ("c", "c1.mp3", "other"),
        ("c", "c2.mp3", "other"),
        ("d", "d1.mp3", "non-binary"),
        ("e", "e1.mp3", "intersex"),
        ("f", "f1.mp3", "transgender"),
        ("g", "g1.mp3", "do_not_wish_to_say"),
        ("h", "h1.mp3", ""),
        ("i", "missing.mp3", "male"),
        ("", "j1.mp3", "male"),
    ]
    lines = [f'{cid}\t{name}\tsays "hi\t2\t0\t\t{gender}\t\t\tfa\t\n' for cid, name, gender in rows]
    (root / "clips").mkdir(parents=True)
    for _, name, _ in rows:
        if name != "missing.mp3":
            _wav(root / "clips" / name)
    (root / "validated.tsv").write_text(CV_HEADER + "".join(lines), encoding="utf-8")
    # One new clip and one already in validated.tsv.
    other = "k\tk1.mp3\tx\t0\t0\t\tmale\t\t\tfa\t\nb\tb1.mp3\tx\t0\t0\t\tfemale_feminine\t\t\tfa\t\n"
    _wav(root / "clips" / "k1.mp3")
    (root / "other.tsv").write_text(CV_HEADER + other, encoding="utf-8")
    return root


def test_common_voice_skip_reasons(tmp_path: Path) -> None:
    clips, stats = read_common_voice(_cv_release(tmp_path / "cv"))
    assert stats.rows == 13
    assert dict(stats.skipped) == {
        "gender other": 2,
        "gender non-binary": 1,
        "gender intersex": 1,
        "gender transgender": 1,
        "gender do_not_wish_to_say": 1,
        "gender blank": 1,
        "missing file": 1,
        "client_id blank": 1,
    }
    assert sorted((c.speaker, c.path.name, c.gender) for c in clips) == [
        ("a", "a1.mp3", "male"),
        ("a", "a2.mp3", "male"),
        ("b", "b1.mp3", "female"),
        ("b", "b2.mp3", "female"),
    ]
    assert stats.kept == 4
    assert all(c.duration == pytest.approx(0.25) for c in clips)


def test_common_voice_other_table_adds_clips_once(tmp_path: Path) -> None:
    clips, stats = read_common_voice(_cv_release(tmp_path / "cv"), ("validated", "other"))
    assert stats.rows == 15
    assert stats.skipped["duplicate row"] == 1
    assert sorted(c.path.name for c in clips) == ["a1.mp3", "a2.mp3", "b1.mp3", "b2.mp3", "k1.mp3"]


def test_common_voice_clip_durations_table(tmp_path: Path) -> None:
    root = _cv_release(tmp_path / "cv")
    (root / "clip_durations.tsv").write_text("clip\tduration[ms]\na1.mp3\t4321\n", encoding="utf-8")
    durations = {c.path.name: c.duration for c in read_common_voice(root)[0]}
    assert durations["a1.mp3"] == pytest.approx(4.321)
    assert durations["a2.mp3"] == pytest.approx(0.25)  # not in the table: probed


def test_speaker_labelled_both_genders_is_dropped(tmp_path: Path, caplog) -> None:
    root = tmp_path / "m"
    _wav(root / "x1.wav"), _wav(root / "x2.wav"), _wav(root / "y1.wav")
    (root / "manifest.csv").write_text(
        "path,gender,speaker_id\nx1.wav,male,x\nx2.wav,female,x\ny1.wav,female,y\n", encoding="utf-8"
    )
    with caplog.at_level(logging.WARNING):
        clips, stats = read_manifest(root / "manifest.csv")
    assert [c.speaker for c in clips] == ["y"]
    assert dict(stats.skipped) == {"speaker labelled both genders": 2}
    assert stats.kept == 1
    assert any("both male and female" in r.getMessage() for r in caplog.records)


def test_manifest_details(tmp_path: Path, caplog) -> None:
    root = tmp_path / "myset"
    _wav(root / "audio" / "a.wav"), _wav(root / "audio" / "b.wav"), _wav(root / "audio" / "c.wav")
    elsewhere = _wav(tmp_path / "elsewhere.wav", seconds=0.5)
    (root / "manifest.csv").write_text(
        "path,gender,speaker_id,source,duration\n"
        "audio/a.wav,female,s1,x,3.5\n"
        "audio/b.wav,m,,x,\n"
        f"{elsewhere},Male,s2,x,\n"
        "audio/c.wav,unknown,s3,x,\n"
        "audio/gone.wav,female,s4,x,\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        clips, stats = read_manifest(root / "manifest.csv")
    assert [(c.path.name, c.gender, c.speaker, c.duration) for c in clips] == [
        ("a.wav", "female", "s1", 3.5),  # duration column wins over the header
        ("b.wav", "male", None, pytest.approx(0.25)),
        ("elsewhere.wav", "male", "s2", pytest.approx(0.5)),
    ]
    assert dict(stats.skipped) == {"gender unknown": 1, "missing file": 1}
    assert {c.corpus for c in clips} == {"myset"}
    assert all(c.attributes == () for c in clips)  # source/duration are not descriptive columns
    assert not stats.has_speakers
    assert any("no speaker_id" in r.getMessage() for r in caplog.records)


def test_librispeech_synthetic_skips_and_pipe_in_name(tmp_path: Path) -> None:
    root = tmp_path / "LibriSpeech"
    root.mkdir()
    (root / "SPEAKERS.TXT").write_text(
        "; comment | with | pipes\n;ID |SEX| SUBSET |MINUTES| NAME\n"
        "60   | M | train-clean-100  | 20.18 | |CBW|Simon\n"
        "61   | F | train-clean-100  | 20.00 | Ann\n"
        "62   | X | train-clean-100  | 20.00 | Who\n",
        encoding="utf-8",
    )
    for speaker in ("60", "61", "62", "99"):
        _wav(root / "train-clean-100" / speaker / "1" / f"{speaker}-1-0000.flac")
    _wav(root / "train-clean-100" / "61" / "2" / "61-2-0000.flac")
    clips, stats = read_librispeech(root)
    assert stats.rows == 5
    assert dict(stats.skipped) == {"speaker not in SPEAKERS.TXT": 1, "gender x": 1}
    assert Counter((c.speaker, c.gender) for c in clips) == {
        ("librispeech_60", "male"): 1,
        ("librispeech_61", "female"): 2,
    }


def test_kaggle_nested_download_layout(tmp_path: Path) -> None:
    root = tmp_path / "kaggle"
    _wav(root / "cv-valid-dev" / "cv-valid-dev" / "sample-000001.mp3")
    _wav(root / "cv-valid-dev" / "cv-valid-dev" / "sample-000002.mp3")
    (root / "cv-valid-dev.csv").write_text(
        "filename,text,up_votes,down_votes,age,gender,accent,duration\n"
        "cv-valid-dev/sample-000001.mp3,hi,1,0,,female,,\n"
        "cv-valid-dev/sample-000002.mp3,hi,1,0,,other,,\n"
        "cv-valid-dev/sample-000003.mp3,hi,1,0,,male,,\n"
        "cv-valid-dev/sample-000004.mp3,hi,1,0,,,,\n",
        encoding="utf-8",
    )
    clips, stats = read_kaggle_common_voice(root)
    assert [(c.path.name, c.gender, c.speaker) for c in clips] == [("sample-000001.mp3", "female", None)]
    assert dict(stats.skipped) == {"gender other": 1, "missing file": 1, "gender blank": 1}


def test_normalise_gender() -> None:
    assert [normalise_gender(v) for v in ("male", " Female ", "male_masculine", "female_feminine", "F")] == [
        "male",
        "female",
        "male",
        "female",
        "female",
    ]
    assert [normalise_gender(v) for v in ("", None, "other", "non-binary", "do_not_wish_to_say")] == [
        None
    ] * 5


# --- bad inputs: one-line VoicegenderError naming the path -------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    for reader in (read_common_voice, read_librispeech, read_kaggle_common_voice):
        with pytest.raises(VoicegenderError) as exc:
            reader(tmp_path / "nope")
        _assert_one_line_naming(exc, tmp_path / "nope")


def test_missing_tsv(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    with pytest.raises(VoicegenderError) as exc:
        read_common_voice(tmp_path)
    _assert_one_line_naming(exc, tmp_path / "validated.tsv")
    root = _cv_release(tmp_path / "cv")
    with pytest.raises(VoicegenderError) as exc:
        read_common_voice(root, ("validated", "invalidated"))
    _assert_one_line_naming(exc, root / "invalidated.tsv")


def test_missing_clips_folder(tmp_path: Path) -> None:
    (tmp_path / "validated.tsv").write_text(CV_HEADER, encoding="utf-8")
    with pytest.raises(VoicegenderError) as exc:
        read_common_voice(tmp_path)
    _assert_one_line_naming(exc, tmp_path / "clips")


def test_missing_columns(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,gender\na.wav,male\n", encoding="utf-8")
    with pytest.raises(VoicegenderError, match="speaker_id") as exc:
        read_manifest(manifest)
    _assert_one_line_naming(exc, manifest)
    (tmp_path / "clips").mkdir()
    (tmp_path / "validated.tsv").write_text("client_id\tpath\tsentence\n", encoding="utf-8")
    with pytest.raises(VoicegenderError, match="gender") as exc:
        read_common_voice(tmp_path)
    _assert_one_line_naming(exc, tmp_path / "validated.tsv")
    kaggle = tmp_path / "cv-valid-test.csv"
    kaggle.write_text("filename,text\n", encoding="utf-8")
    with pytest.raises(VoicegenderError, match="gender") as exc:
        read_kaggle_common_voice(kaggle)
    _assert_one_line_naming(exc, kaggle)


def test_empty_and_binary_tables(tmp_path: Path) -> None:
    empty = tmp_path / "empty" / "manifest.csv"
    empty.parent.mkdir()
    empty.write_text("", encoding="utf-8")
    with pytest.raises(VoicegenderError) as exc:
        read_manifest(empty)
    _assert_one_line_naming(exc, empty)
    binary = tmp_path / "bin" / "manifest.csv"
    binary.parent.mkdir()
    binary.write_bytes(b"path,gender,speaker_id\n\xff\xfe\x00garbage\n")
    with pytest.raises(VoicegenderError) as exc:
        read_manifest(binary)
    _assert_one_line_naming(exc, binary)


def test_missing_speakers_txt(tmp_path: Path) -> None:
    _wav(tmp_path / "train-clean-100" / "1" / "1" / "1-1-0000.flac")
    with pytest.raises(VoicegenderError) as exc:
        read_librispeech(tmp_path)
    _assert_one_line_naming(exc, tmp_path / "SPEAKERS.TXT")


def test_read_any_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(VoicegenderError, match="unknown kind 'libri'"):
        read_any(f"libri:{tmp_path}")
    with pytest.raises(VoicegenderError, match="can't tell the dataset kind") as exc:
        read_any(tmp_path)
    _assert_one_line_naming(exc, tmp_path)
    with pytest.raises(VoicegenderError) as exc:
        read_any(tmp_path / "missing")
    _assert_one_line_naming(exc, tmp_path / "missing")
    with pytest.raises(VoicegenderError, match="no path"):
        read_any("cv:")


def test_parse_spec() -> None:
    assert parse_spec("librispeech:/data/LS") == ("librispeech", Path("/data/LS"))
    assert parse_spec("CV:/data/cv") == ("commonvoice", Path("/data/cv"))
    assert parse_spec("cv-kaggle:x.csv") == ("kaggle", Path("x.csv"))
    assert parse_spec("/data/plain") == (None, Path("/data/plain"))


# --- Ogg Opus manifests (commonvoice/, speechocean762/, small-sets/, eval-only/) --------------------------

OPUS_SETS = {  # folder: (rows, female clips, male clips, female speakers, male speakers)
    "commonvoice": (2484, 595, 1889, 410, 1278),
    "speechocean762": (1249, 625, 624, 125, 125),
    "small-sets": (82, 13, 69, 2, 8),
    "eval-only": (1670, 655, 1015, 85, 130),
}


@pytest.mark.parametrize("folder", sorted(OPUS_SETS))
def test_opus_manifest_counts(data_dir: Path, folder: str) -> None:
    rows, f_clips, m_clips, f_speakers, m_speakers = OPUS_SETS[folder]
    clips, stats = read_any(data_dir / folder)
    assert (stats.rows, stats.kept, dict(stats.skipped)) == (rows, rows, {})
    assert Counter(c.gender for c in clips) == {"female": f_clips, "male": m_clips}
    assert (_speakers(clips, "female"), _speakers(clips, "male")) == (f_speakers, m_speakers)
    assert stats.has_speakers and not stats.warnings
    # Durations come from the Opus headers: every clip is 1-12 s.
    assert all(
        c.path.suffix == ".opus" and c.duration is not None and 1.0 <= c.duration <= 12.0 for c in clips
    )


def test_opus_manifest_attributes(data_dir: Path) -> None:
    def attrs(clips: list[Clip]) -> list[dict[str, str]]:
        return [dict(c.attributes) for c in clips]

    cv = attrs(read_any(data_dir / "commonvoice")[0])
    assert len({a["lang"] for a in cv}) == 59
    english = attrs(read_any(data_dir / "commonvoice" / "cv61-english")[0])
    assert sum("age" in a for a in english) == 61  # one blank age is not kept
    ocean = attrs(read_any(data_dir / "speechocean762")[0])
    assert all(a["lang"] == "en" for a in ocean)
    assert {int(a["age"]) for a in ocean} >= {6, 43} and all(6 <= int(a["age"]) <= 43 for a in ocean)
    small = read_any(data_dir / "small-sets")[0]
    assert sum("accent" in a for a in attrs(small)) == 76
    fsdd = [dict(c.attributes) for c in small if c.corpus == "fsdd_digits"]
    assert Counter(a["accent"] for a in fsdd) == {
        "USA/neutral": 20,
        "DEU/German": 20,
        "BEL/French": 10,
        "GRC/Greek": 10,
    }
    # Only DESCRIPTIVE_COLUMNS are kept: not source, not fsdd's utterances.
    assert {k for a in attrs(small) for k in a} == {"lang", "age", "accent"}


def test_opus_fixture_manifest_reads_and_decodes(fixtures_dir: Path) -> None:
    """Two real 16 kHz Opus clips (speechocean762, Common Voice 6.1) in a CRLF manifest with rows of
    other genders and a missing file: the rows are counted, the clips decode through load_batch."""
    manifest = fixtures_dir / "opus_manifest" / "manifest.csv"
    clips, stats = read_manifest(manifest)
    assert (stats.rows, stats.kept) == (8, 2)
    assert dict(stats.skipped) == {
        "gender other": 1,
        "gender non-binary": 1,
        "gender do_not_wish_to_say": 1,
        "gender blank": 1,
        "gender intersex": 1,
        "missing file": 1,
    }
    assert [(c.gender, c.speaker, c.corpus) for c in clips] == [
        ("male", "speechocean762_0048", "opus_manifest"),
        ("female", "cv_en_rsample_76485f7d3664df25", "opus_manifest"),
    ]
    # lang and age kept; the blank accent and the utterances column are not.
    assert [c.attributes for c in clips] == [
        (("lang", "en"), ("age", "6")),
        (("lang", "en"), ("age", "twenties")),
    ]
    assert [c.duration for c in clips] == [pytest.approx(1.44), pytest.approx(1.35)]

    result = load_batch(clips)
    assert result.rejects == []
    assert [item for item, _ in result.loaded] == clips
    for clip, audio in result.loaded:
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(audio.size - clip.duration * 16000) <= 160
        assert 0.01 < float(np.sqrt(np.mean(audio**2))) < 0.5 and np.abs(audio).max() <= 1.0


def test_generated_opus_with_accent(tmp_path: Path) -> None:
    root = tmp_path / "set"
    root.mkdir()
    t = np.arange(24000) / 16000
    tone = (0.2 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    soundfile.write(root / "a.opus", tone, 16000, format="OGG", subtype="OPUS")
    (root / "manifest.csv").write_text(
        "path,gender,speaker_id,source,lang,age,accent,utterances\n"
        "a.opus,male,s1,synthetic,en,22,English SW England,1+2\n",
        encoding="utf-8",
    )
    clips, stats = read_any(root)
    assert stats.kept == 1
    assert clips[0].attributes == (("lang", "en"), ("age", "22"), ("accent", "English SW England"))
    assert clips[0].duration == pytest.approx(1.5)
    ((_, audio),) = load_batch(clips).loaded
    assert abs(audio.size - 24000) <= 160 and 0.1 < float(np.abs(audio).max()) <= 0.3


# --- evaluation-only data is refused for training -------------------------------------------------------

EVAL_ONLY_README = (
    "# A corpus\n\n## As packed here\n- At most 10 clips per speaker.\n"
    "- Use: evaluation only (licence is non-commercial, research-only or not stated): never train a "
    "shipped model on it.\n"
)
# small-sets/african_phone: mentions a part that is evaluation only, but the set is for training.
TRAINING_README = (
    "- Use: two male voices in two African languages on phone microphones. Yoruba (MIT) is usable for "
    "training;\n  Berom has no licence: evaluation only.\n- Use: see the README above.\n"
)


def _manifest_folder(root: Path, readme: str | None = None) -> Path:
    _wav(root / "a.wav")
    (root / "manifest.csv").write_text("path,gender,speaker_id\na.wav,male,s1\n", encoding="utf-8")
    if readme is not None:
        (root / "README.md").write_text(readme, encoding="utf-8")
    return root


def test_refuse_eval_only_by_folder_name(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(_manifest_folder(tmp_path / "EmoDB"))  # the real path counts too
    for root in (
        _manifest_folder(tmp_path / "eval-only" / "nemo"),
        _manifest_folder(tmp_path / "Eval-Only" / "nemo"),
        tmp_path / "EmoDB",
        tmp_path / "link",
    ):
        for spec in (str(root), f"manifest:{root / 'manifest.csv'}", str(root / "manifest.csv")):
            with pytest.raises(VoicegenderError, match="--allow-eval-only") as exc:
                refuse_eval_only(spec, allow=False)
            _assert_one_line_naming(exc, Path(spec.removeprefix("manifest:")))
            assert "evaluation-only" in str(exc.value)
    refuse_eval_only(str(_manifest_folder(tmp_path / "ok" / "evaluation")), allow=False)


def test_refuse_eval_only_by_readme(tmp_path: Path) -> None:
    root = _manifest_folder(tmp_path / "nemo", EVAL_ONLY_README)
    with pytest.raises(VoicegenderError, match=r"README\.md says 'Use: evaluation only'") as exc:
        refuse_eval_only(str(root / "manifest.csv"), allow=False)
    _assert_one_line_naming(exc, root / "manifest.csv")
    # A folder of manifests is refused when one of its sets is.
    _manifest_folder(tmp_path / "fine", "- Use: training and evaluation.\n")
    with pytest.raises(VoicegenderError, match="nemo"):
        refuse_eval_only(str(tmp_path), allow=False)
    # "evaluation only" elsewhere than the Use: line is no refusal.
    refuse_eval_only(str(_manifest_folder(tmp_path / "phone", TRAINING_README)), allow=False)
    refuse_eval_only(str(tmp_path / "fine"), allow=False)


def test_allow_eval_only_warns(tmp_path: Path, caplog) -> None:
    root = _manifest_folder(tmp_path / "eval-only" / "x")
    with caplog.at_level(logging.WARNING):
        refuse_eval_only(str(root), allow=True)
    assert any("do not ship this model" in r.getMessage() for r in caplog.records)


def test_shared_eval_only_sets_are_refused(data_dir: Path, tmp_path: Path) -> None:
    refused = [data_dir / "emodb", data_dir / "emodb" / "manifest.csv", data_dir / "eval-only"]
    refused += sorted(p.parent for p in (data_dir / "eval-only").glob("*/manifest.csv"))
    assert len(refused) == 3 + 7
    for path in refused:
        with pytest.raises(VoicegenderError, match="--allow-eval-only"):
            refuse_eval_only(str(path), allow=False)
    training = [
        "LibriSpeech",
        "commonvoice",
        "commonvoice-fa",
        "speechocean762",
        "small-sets",
        "more-speakers",
    ]
    training += [str(p.parent.relative_to(data_dir)) for p in data_dir.glob("*/*/manifest.csv")]
    training = [name for name in training if not name.startswith("eval-only")]
    assert len(training) == 6 + 4 + 4 + 3
    for name in training:
        assert eval_only_reason(data_dir / name) is None, name
    # Each eval-only README says so by itself (a copy under a plain folder name is refused too).
    for readme in sorted((data_dir / "eval-only").glob("*/README.md")):
        copy = _manifest_folder(tmp_path / readme.parent.name, readme.read_text(encoding="utf-8"))
        assert "README.md says" in (eval_only_reason(copy) or ""), readme


def _train_cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("voicegender-train")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=False, timeout=120)


def test_cli_refuses_eval_only_data(tmp_path: Path) -> None:
    bad = _manifest_folder(tmp_path / "eval-only" / "nemo")
    good = _manifest_folder(tmp_path / "mine")
    out = tmp_path / "m.tflite"
    for args in (
        ["train", "--data", str(good), "--data", f"manifest:{bad}", "--out", str(out)],
        ["crossval", "--data", str(bad), "--report-dir", str(tmp_path / "r")],
    ):
        result = _train_cli(*args)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("voicegender-train: error: "), result.stderr
        assert str(bad) in lines[0] and "--allow-eval-only" in lines[0]
        assert result.stdout == ""
    assert not out.exists() and not (tmp_path / "r").exists()
    assert "--allow-eval-only" in _train_cli("train", "--help").stdout


@pytest.fixture
def fake_ship(monkeypatch) -> list[tuple[str, tuple]]:
    """voicegender_training.ship / .crossval replaced by recorders (no TensorFlow, no training)."""
    import voicegender_training
    import voicegender_training.tflog

    calls: list[tuple[str, tuple]] = []

    @dataclasses.dataclass(frozen=True)
    class Settings:
        train: object = None

    ship = types.SimpleNamespace(
        ShipSettings=Settings,
        run_custom=lambda *a, **k: calls.append(("train", a)),
        shipped_specs=lambda data_dir: ([], {}),
        SHIP_CV_TABLES=("validated",),
    )
    crossval = types.SimpleNamespace(run=lambda *a, **k: calls.append(("crossval", a)))
    for name, module in (("ship", ship), ("crossval", crossval)):
        monkeypatch.setitem(sys.modules, f"voicegender_training.{name}", module)
        monkeypatch.setattr(voicegender_training, name, module, raising=False)
    monkeypatch.setattr(voicegender_training.tflog, "quiet_tensorflow", lambda verbose: None)
    return calls


def test_cli_allow_eval_only_and_eval_option(tmp_path: Path, fake_ship, capsys) -> None:
    from voicegender_training.cli import main

    bad = str(_manifest_folder(tmp_path / "emodb"))
    good = str(_manifest_folder(tmp_path / "mine"))
    out = str(tmp_path / "m.tflite")
    assert main(["train", "--data", bad, "--out", out]) == 2
    assert fake_ship == [] and "--allow-eval-only" in capsys.readouterr().err
    # --eval is what evaluation-only data is for: never refused.
    assert main(["train", "--data", good, "--eval", bad, "--out", out]) == 0
    assert main(["train", "--data", bad, "--out", out, "--allow-eval-only"]) == 0
    assert main(["crossval", "--data", bad, "--allow-eval-only"]) == 0
    assert main(["crossval", "--data", good, "--eval", bad]) == 0
    assert [(kind, a[0], a[1]) for kind, a in fake_ship] == [
        ("train", [good], [bad]),
        ("train", [bad], []),
        ("crossval", [bad], {}),
        ("crossval", [good], {bad: bad}),
    ]
