"""The 1000 ImageNet (ILSVRC 2012) classes in CaffeNet / torchvision output order.

Index i is output unit i of fc8 (CaffeNet's ``synset_words.txt`` order: WordNet ids sorted, the
order torchvision's AlexNet uses too). Each entry of :data:`SYNSETS` is the WordNet id and the
comma-separated synonyms of ``synset_words.txt``; :data:`CLASS_NAMES` holds the first synonym.

    >>> class_index("goldfish"), CLASS_NAMES[1], WNIDS[1]
    (1, 'goldfish', 'n01443537')

Two first names occur twice ("crane": 134 the bird, 517 the machine; "maillot": 638, 639);
:func:`class_index` refuses them with both candidates named, and takes a WordNet id, any other
synonym ("crane" is also ambiguous as a synonym) or an index instead.

The list itself is the package's data file ``imagenet_classes.txt`` (``synset_words.txt``: one
class a line, the WordNet id, a space, the synonyms).
"""
import os


_SYNSET_WORDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")


def _read_synsets(path):
    """``((wnid, "synonym, synonym, ..."), ...)`` from a ``synset_words.txt``: one class a line."""
    with open(path, encoding="utf-8") as f:
        return tuple(tuple(line.rstrip("\n").split(" ", 1)) for line in f if line.strip())


SYNSETS = _read_synsets(_SYNSET_WORDS)
WNIDS = tuple(wnid for wnid, _ in SYNSETS)
SYNONYMS = tuple(tuple(name.strip() for name in names.split(",")) for _, names in SYNSETS)
CLASS_NAMES = tuple(names[0] for names in SYNONYMS)
assert len(SYNSETS) == 1000


def _normalise(name):
    return " ".join(str(name).replace("_", " ").split()).lower()


def class_index(name):
    """The fc8 unit of a class given by index, WordNet id (``n01443537``), or name (any synonym,
    case-insensitive, ``_`` read as a space). Raises ``KeyError`` naming the candidates when the name
    is unknown or ambiguous."""
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        index = int(name)
        if not 0 <= index < len(SYNSETS):
            raise KeyError(f"class index {index} out of range 0..{len(SYNSETS) - 1}")
        return index
    if name in WNIDS:
        return WNIDS.index(name)
    key = _normalise(name)
    first = [i for i, names in enumerate(SYNONYMS) if _normalise(names[0]) == key]
    matches = first or [i for i, names in enumerate(SYNONYMS) if key in map(_normalise, names)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        close = [CLASS_NAMES[i] for i, names in enumerate(SYNONYMS)
                 if any(key in _normalise(n) for n in names)][:10]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise KeyError(f"no ImageNet class named {name!r}{hint}")
    listed = ", ".join(f"{i} ({WNIDS[i]}: {', '.join(SYNONYMS[i])})" for i in matches)
    raise KeyError(f"ImageNet class name {name!r} is ambiguous: {listed}; pass an index or WordNet id")
