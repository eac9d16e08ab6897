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
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicegender.errors import VoicegenderError
from voicegender_training.datasets import (
    Clip,
    normalise_gender,
    parse_spec,
    read_any,
    read_common_voice,
    read_kaggle_common_voice,
    read_librispeech,
    read_manifest,
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
