"""A CSV header's columns found by name: a close match suggested for a typo, and a row index
column (what pandas' to_csv writes by default) refused with the way to drop it."""

import difflib
import re

from ..errors import InputError

# pandas' DataFrame.to_csv writes the row index as a first column with an empty name; read
# back and written again, that column is called 'Unnamed: 0'.
_INDEX_NAME = re.compile(r"Unnamed: \d+")


def find_column(names, name, what, option, path, repeated=False):
    """The index of the one column called `name` (all of them, as a list, if repeated)."""
    matches = [i for i, known in enumerate(names) if known == name]
    if not matches:
        hint = close_match(name, names)
        hint = f"; did you mean {hint!r}?" if hint is not None else ""
        where = " (--index-col)" if option == "--index-col" else ""
        raise InputError(f"no {what} {name!r}{where} in the header{hint} "
                         f"({len(names)} columns: {', '.join(names)})", path=path)
    if repeated:
        return matches
    if len(matches) > 1:
        raise InputError(f"the header names column {name!r} {len(matches)} times", path=path)
    return matches[0]


def refuse_index(name, index, path) -> None:
    """The first feature column looks like a row index pandas wrote: say how to drop it."""
    if name and not _INDEX_NAME.fullmatch(name):
        return
    which = "first column" if index == 0 else f"first feature column (column {index + 1})"
    what = "has no name" if not name else f"is named {name!r}"
    raise InputError(f"line 1: the {which} {what}: it looks like a row index (pandas' "
                     "to_csv writes one unless index=False); drop it with --index-col "
                     f"{quoted(name)}, or give it a name to keep it as a feature", path=path)


def close_match(name, names):
    """The column a mistyped name most likely meant (case-insensitive), or None."""
    lowered = {}
    for known in names:
        lowered.setdefault(known.lower(), known)
    found = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def quoted(name) -> str:
    """A column name as the user would type it in a shell: '' for the empty name."""
    return "'" + name.replace("'", "'\\''") + "'"
