"""Did-you-mean hints for misspelt keys and type names, shared by every error message."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable


def closest(word: str, options: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The option most like `word`: similarity, boosted by a shared prefix and by equal length."""
    options = [str(o) for o in options]
    scored = []
    for option in options:
        ratio = difflib.SequenceMatcher(None, option.lower(), word.lower()).ratio()  # difflib's own order
        if ratio >= cutoff:
            prefix = len(os.path.commonprefix([word.lower(), option.lower()]))
            # One wrong letter (same length) is the commonest typo: AdamX means AdamW more often than Adamax.
            same_length = len(option) == len(word)
            scored.append((ratio + 0.05 * prefix + 0.15 * same_length, option))
    return max(scored)[1] if scored else None


def did_you_mean(word: object, options: Iterable[str], cutoff: float = 0.6) -> str:
    """` (did you mean 'x'?)` for a close option, else an empty string."""
    match = closest(str(word), options, cutoff)
    return f" (did you mean {match!r}?)" if match else ""
