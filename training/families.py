"""Families of training corpora: recordings that share a source (and so a microphone, room and way of
speaking). Leave-one-corpus-out holds out one family at a time; training weights share weight
between families."""

from __future__ import annotations

FAMILIES = {
    "LibriSpeech": ("librispeech",),
    "Common Voice": ("cv61-multilingual", "cv61-english", "cv13-english", "twi-tamil", "commonvoice-fa"),
    "speechocean762": ("speechocean762",),
    "the rest (VCTK, AISHELL-3, FSDD, CMU ARCTIC, Yoruba phone)": (
        "vctk_samples",
        "aishell3_sample",
        "fsdd_digits",
        "cmu_arctic_samples",
        "vctk_p239",
        "african_phone",
    ),
}
"""Training families by corpus name (``Clip.corpus``)."""


def family_of(corpus: str) -> str | None:
    return next((name for name, corpora in FAMILIES.items() if corpus in corpora), None)
