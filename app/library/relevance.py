"""Which matches are worth showing: a floor under the scores, relative to the best match.

A raw cosine means little on its own (0.3 is a strong text match for one model and a weak one for
another), but within one query the photos that do not match form a broad background and the matches
stand out above it. The background is measured from the lower quantiles of the scores (the 2nd and
10th percentiles), so it stays right even when most of the library matches ("dog" in a dog
photographer's library: up to about 60% matches measured). Then:
- the best match does not stand out from the background (no further above it than the best of as
  many unrelated photos would be, `sqrt(2 ln n)` standard deviations, plus a margin): the thing is
  not in the library. Only the closest `ABSENT_SHOW` are shown, and the front says so;
- otherwise results run down to `CUT` of the way from the background to the best match.
A best match at `IDENTICAL` or above is the query's own picture (or a copy): never absent.
Fewer than `MIN_SCORES` photos are too few to tell a background from matches: nothing is cut.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CUT = 0.45          # the floor: this fraction of the way from the background up to the best match
MARGIN = 0.25       # standard deviations above the expected best of unrelated photos
ABSENT_SHOW = 8     # when nothing stands out, the closest this many are shown
MIN_SCORES = 30
IDENTICAL = 0.98    # a cosine this high is the same picture
Z_LOW, Z_HIGH = -2.0537, -1.2816  # the normal quantiles of the 2nd and 10th percentiles


@dataclass(frozen=True)
class Relevance:
    floor: float    # scores below this are not shown
    absent: bool    # nothing stands out: the query's subject is not in the library


def relevance(scores: np.ndarray) -> Relevance | None:
    """The floor for one query's scores (non-finite scores are photos filtered out); None: no cut."""
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if len(s) < MIN_SCORES:
        return None
    low, high = np.percentile(s, [2, 10])
    sigma = max((high - low) / (Z_HIGH - Z_LOW), 1e-9)
    centre = high - Z_HIGH * sigma
    best = float(s.max())
    if best < IDENTICAL and (best - centre) / sigma < math.sqrt(2 * math.log(len(s))) + MARGIN:
        return Relevance(float(np.partition(s, -ABSENT_SHOW)[-ABSENT_SHOW]) if len(s) > ABSENT_SHOW else -np.inf,
                         True)
    return Relevance(float(centre + CUT * (best - centre)), False)
