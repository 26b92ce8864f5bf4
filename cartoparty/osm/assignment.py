"""One assignment for a whole event: every point and every OSM feature of its kind around it
decided together, so that the total cost is least, then duplicates decided with OSM in view.

The database finds the candidates (osm/conflate.py): each point's features within its preset's
radius, with how many of the walker's answers the feature's tags agree with and contradict, and
the pairs of points of one preset within that radius. Here, in arrays:

- a pair's cost is half the square of its distance in units of the point's GPS accuracy (a
  point at ±3 m is less readily 4.5 m from its feature than one at ±15 m; an accuracy below
  ACCURACY_FLOOR_M counts as that floor, since features mapped from imagery are a metre or two
  off; an unknown one as the preset's radius), less AGREE for each agreeing tag, plus CONTRADICT
  for each contradicting one; being `new` costs NEW for every point;
- the least total cost over all points at once, each taking a feature or its own "new" (scipy's
  linear_sum_assignment on each group of points linked by shared candidates), so a point that
  loses a feature to a better claimant takes its own next-best one;
- a point's runner-up is its best other choice (a feature no one took, or new); it is
  `ambiguous` when its runner-up costs less than MARGIN more than the one it got;
- a point left new is the `duplicate` of another point of its preset within both their
  uncertainties whose tags do not contradict its own, when that other point is new too or holds
  a feature this point could have been: the same feature recorded twice, never merely near.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

NEW = 1.5               # the cost of "nothing in OSM is this point": a pair √3 σ away costs as much
AGREE = 0.25            # taken off a pair's cost for each tag the walker and OSM agree on
CONTRADICT = 0.5        # added for each tag they give different values
MARGIN = 0.05           # choices closer than this cannot be told apart
ACCURACY_FLOOR_M = 2.0  # the least uncertainty of a point, in metres
TYPICAL_ACCURACY_M = 5.0  # a phone's usual fix outdoors, in metres
VAGUENESS = 0.5         # the most a point's accuracy adds to or takes off its pairs' cost
SAME_SPOT_M = 1.0       # a feature this near a point may be its own, whoever took it
FORBIDDEN = 1e9         # the cost of a pair that is no candidate


@dataclass
class Candidates:
    """What the database found, as parallel arrays (indexes into the points' arrays).

    points: `radius` (metres) and `accuracy` (metres, NaN when unknown) per point;
    pairs: `point`, `feature` (an index of the event's features), `distance` (metres), `agree`
    and `contradict` (tag counts); twins: `later`, `earlier` (two points of one preset within
    its radius), `distance` and `contradict` (whether their tags disagree)."""

    radius: np.ndarray
    accuracy: np.ndarray
    point: np.ndarray
    feature: np.ndarray
    distance: np.ndarray
    agree: np.ndarray
    contradict: np.ndarray
    later: np.ndarray
    earlier: np.ndarray
    twin_distance: np.ndarray
    twin_contradict: np.ndarray


@dataclass
class Decision:
    """Per point: `feature` (an index, or -1 for none), `ambiguous`, `duplicate_of` (a point's
    index, or -1), `distance` (metres, to the feature or the duplicated point; NaN for new),
    `cost` (of its pair, or NEW), `runner_up` (its best other choice: a feature's index, -1 for
    new, -2 for none), `runner_up_cost` (inf for none), `runner_up_distance` (metres, NaN but
    for a feature) and `gap` (between the two); what the
    cost was made of: `accuracy` (metres, NaN when unknown), `sigma` (the uncertainty used,
    metres), `agree` and `contradict` (its pair's tag counts, NaN without a feature); `shared`:
    its feature is another point's, within SAME_SPOT_M of it."""

    feature: np.ndarray
    ambiguous: np.ndarray
    duplicate_of: np.ndarray
    distance: np.ndarray
    cost: np.ndarray
    gap: np.ndarray
    runner_up: np.ndarray
    runner_up_cost: np.ndarray
    runner_up_distance: np.ndarray
    accuracy: np.ndarray
    sigma: np.ndarray
    agree: np.ndarray
    contradict: np.ndarray
    shared: np.ndarray


def uncertainty(candidates):
    """Each point's uncertainty in metres: its accuracy, at least the floor; its preset's radius
    when unknown."""
    known = np.where(np.isnan(candidates.accuracy), candidates.radius, candidates.accuracy)
    return np.maximum(known, ACCURACY_FLOOR_M)


def pair_costs(candidates, sigma):
    """The cost of each (point, feature) pair. A point's pairs also cost the log of its reported
    accuracy against a typical fix's, within ±VAGUENESS: of two points after one feature, each
    1 σ away, the sharper one is that feature (its position says more), and the other takes
    another or is new; bounded, so that no accuracy keeps a point from its own feature."""
    point = candidates.point
    scaled = candidates.distance / sigma[point]
    vagueness = np.nan_to_num(np.clip(np.log(np.maximum(candidates.accuracy, ACCURACY_FLOOR_M)
                                             / TYPICAL_ACCURACY_M), -VAGUENESS, VAGUENESS))
    return (0.5 * scaled**2 + vagueness[point]
            - AGREE * candidates.agree + CONTRADICT * candidates.contradict)


def solve(points, features, point, feature, cost):
    """The feature each point gets in the least-cost assignment (-1: new), solved group by
    group: points and features linked by candidate pairs, one after the other, are one group
    (a row of trees is one), and groups do not bear on each other."""
    useful = cost < NEW  # a pair costing as much as new is never better than new
    point, feature, cost = point[useful], feature[useful], cost[useful]
    chosen = np.full(points, -1)
    links = csr_matrix((np.ones(len(point)), (point, points + feature)),
                       shape=(points + features, points + features))
    group = connected_components(links, directed=False)[1][point]
    order = np.argsort(group, kind="stable")
    point, feature, cost, group = point[order], feature[order], cost[order], group[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else group
    ends = np.r_[starts[1:], len(group)].astype(int)
    alone = ends - starts == 1  # one point, one feature: it is that feature
    chosen[point[starts[alone]]] = feature[starts[alone]]
    for start, end in zip(starts[~alone].tolist(), ends[~alone].tolist(), strict=True):
        rows, row = np.unique(point[start:end], return_inverse=True)
        columns, column = np.unique(feature[start:end], return_inverse=True)
        # Each point's own column is "new"; the pairs that are not candidates are forbidden.
        matrix = np.full((len(rows), len(columns) + len(rows)), FORBIDDEN)
        matrix[row, column] = cost[start:end]
        matrix[np.arange(len(rows)), len(columns) + np.arange(len(rows))] = NEW
        assigned, to = linear_sum_assignment(matrix)
        found = to < len(columns)
        chosen[rows[assigned[found]]] = columns[to[found]]
    return chosen


def assign(candidates, features):
    """The decision for every point (see the module's docstring)."""
    points = len(candidates.radius)
    sigma = uncertainty(candidates)
    cost = pair_costs(candidates, sigma)
    chosen = solve(points, features, candidates.point, candidates.feature, cost)
    got = chosen[candidates.point] == candidates.feature
    taken = np.zeros(features, bool)
    taken[chosen[chosen >= 0]] = True
    free = ~taken[candidates.feature] & ~got
    runner_up, runner_up_cost, runner_up_distance = best_other(candidates, cost, chosen, free)
    pair = np.full(points, -1)  # each point's candidate pair, -1 for none
    pair[candidates.point[got]] = np.flatnonzero(got)
    ambiguous = (chosen >= 0) & (runner_up_cost - per_point(cost, pair, NEW) < MARGIN)
    # A point left new though a feature another point took lies within a metre of it: which
    # of the two that feature is cannot be told; the point is no one's duplicate.
    beside = np.flatnonzero((chosen[candidates.point] == -1) & taken[candidates.feature]
                            & (candidates.distance <= SAME_SPOT_M))
    shared = np.zeros(points, bool)
    at = candidates.point[beside]
    chosen[at], pair[at], shared[at], ambiguous[at] = candidates.feature[beside], beside, True, True
    runner_up[at], runner_up_cost[at], runner_up_distance[at] = -1, NEW, np.nan
    mine = per_point(cost, pair, NEW)
    distance = per_point(candidates.distance, pair, np.nan)
    duplicate_of, twin_distance = duplicates(candidates, sigma, chosen, ambiguous)
    distance = np.where(duplicate_of >= 0, twin_distance, distance)
    return Decision(
        feature=chosen, ambiguous=ambiguous, duplicate_of=duplicate_of, distance=distance, cost=mine,
        gap=runner_up_cost - mine, runner_up=runner_up, runner_up_cost=runner_up_cost,
        runner_up_distance=runner_up_distance, accuracy=candidates.accuracy, sigma=sigma,
        agree=per_point(candidates.agree, pair, np.nan),
        contradict=per_point(candidates.contradict, pair, np.nan), shared=shared)


def per_point(values, pair, fill):
    """A pair's value for each point (`pair`: its index, -1 for none, which gets `fill`)."""
    if not len(values):
        return np.full(len(pair), fill, float)
    return np.where(pair >= 0, values[np.maximum(pair, 0)], fill)


def best_other(candidates, cost, chosen, free):
    """Each point's best choice besides its own, among new and the `free` pairs (features no one
    took): a feature's index, -1 for new or -2 for none (a point already new with no free
    feature), its cost (inf for none) and its distance in metres (NaN but for a feature). Of
    equal costs, new, then the first pair, wins."""
    best = np.where(chosen >= 0, -1, -2)
    best_cost = np.where(chosen >= 0, NEW, np.inf)
    free = np.flatnonzero(free)
    free = free[np.lexsort((cost[free], candidates.point[free]))]  # by point, cheapest first
    owner = candidates.point[free]
    first = free[np.r_[True, owner[1:] != owner[:-1]]] if len(free) else free
    first = first[cost[first] < best_cost[candidates.point[first]]]
    best[candidates.point[first]] = candidates.feature[first]
    best_cost[candidates.point[first]] = cost[first]
    distance = np.full(len(chosen), np.nan)
    distance[candidates.point[first]] = candidates.distance[first]
    return best, best_cost, distance


def duplicates(candidates, sigma, chosen, ambiguous):
    """For each point, the point it duplicates (-1: none) and how far it is."""
    points = len(chosen)
    duplicate_of = np.full(points, -1)
    how_far = np.full(points, np.inf)
    later, earlier, far = candidates.later, candidates.earlier, candidates.twin_distance
    near = (~candidates.twin_contradict
            & (far <= np.minimum(candidates.radius[later], np.hypot(sigma[later], sigma[earlier]))))
    could_be = set(zip(candidates.point.tolist(), candidates.feature.tolist(), strict=True))
    settled = chosen >= 0  # (a point ambiguous beside a feature is settled: no one's duplicate)
    for a, b, metres in zip(later[near].tolist(), earlier[near].tolist(), far[near].tolist(), strict=True):
        # Which of the two would be the duplicate: the later when both are new; else the one
        # left new, when the other holds a feature it could have been.
        if not settled[a] and not settled[b]:
            copy, original = a, b
        elif settled[b] and not settled[a] and not ambiguous[b] and (a, int(chosen[b])) in could_be:
            copy, original = a, b
        elif settled[a] and not settled[b] and not ambiguous[a] and (b, int(chosen[a])) in could_be:
            copy, original = b, a
        else:
            continue
        if (metres, original) < (how_far[copy], duplicate_of[copy]):
            duplicate_of[copy], how_far[copy] = original, metres
    # Chains (c duplicates b, which duplicates a) lead to their first point: a later point only
    # ever points to an earlier one or to a point holding a feature, which duplicates nothing.
    while True:
        through = (duplicate_of >= 0) & (duplicate_of[np.maximum(duplicate_of, 0)] >= 0)
        if not through.any():
            return duplicate_of, how_far
        duplicate_of[through] = duplicate_of[duplicate_of[through]]
