"""Paired comparison of two policies evaluated on the same seeds.

`firework policy eval` starts episode i of a task from seed + i, so two policies evaluated with the
same --seed see the same initial states. Pairing episodes by (task, seed) removes the scene-to-scene
variance: only the discordant pairs (one policy succeeds where the other fails) carry evidence, and
under "no difference" each of them is a fair coin (McNemar's exact test). With 100 episodes a gap of
0.05 in average success is well inside the noise of two independent estimates, but can be decided
by the discordant pairs when they mostly go one way.

Repeats of one comparison (both policies trained again with another training seed, evaluated on
the same seeds) pool with `load_repeated_outcomes`: A's k-th evaluation is paired with B's k-th,
episodes keyed (task, seed, k). Training runs are independent, so under "no difference" the sign
of every discordant pair is still a fair coin, and the pooled test sees the spread due to training.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from firework_common.errors import DataError
from firework_common.manifest import load_manifest

Outcomes = dict[tuple, bool]   # (task, seed) or (task, seed, repeat) -> success


def load_outcomes(eval_dirs: Sequence[Path]) -> Outcomes:
    """Success of every finished episode in the given eval round directories, keyed by (task, seed)."""
    outcomes: Outcomes = {}
    for eval_dir in eval_dirs:
        for rec in load_manifest(Path(eval_dir)):
            if rec.get("human_steps", 0):
                raise DataError(f"{eval_dir}: episode {rec['bag']} has human steps; "
                                f"a paired policy comparison needs autonomous evaluation episodes")
            key = (rec["task"], int(rec["seed"]))
            if key in outcomes:
                raise DataError(f"{eval_dir}: episode {rec['task']} seed {key[1]} appears twice "
                                f"in the evaluations given for one policy")
            outcomes[key] = rec["outcome"] == "success"
    if not outcomes:
        raise DataError(f"no episodes in {', '.join(map(str, eval_dirs))}")
    return outcomes


def load_repeated_outcomes(a_dirs: Sequence[Path], b_dirs: Sequence[Path]) -> tuple[Outcomes, Outcomes]:
    """A's k-th eval directory paired with B's k-th (repeat k), keyed (task, seed, k)."""
    if len(a_dirs) != len(b_dirs):
        raise DataError(f"paired repeats need as many evaluations of A as of B; got {len(a_dirs)} "
                        f"and {len(b_dirs)}")
    a: Outcomes = {}
    b: Outcomes = {}
    for k, (a_dir, b_dir) in enumerate(zip(a_dirs, b_dirs)):
        a.update({(*key, k): ok for key, ok in load_outcomes([a_dir]).items()})
        b.update({(*key, k): ok for key, ok in load_outcomes([b_dir]).items()})
    return a, b


def binomial_two_sided_p(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value of `wins` against `losses` under a fair coin."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def binomial_one_sided_p(wins: int, losses: int) -> float:
    """Exact p-value of at least `wins` of wins + losses under a fair coin (A better than B)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(wins, n + 1)) / 2.0 ** n


@dataclass(frozen=True)
class PairedResult:
    """A (policy A) vs B on the episodes both were evaluated on."""

    pairs: int
    success_a: int
    success_b: int
    a_only: int          # discordant: A succeeded, B failed
    b_only: int          # discordant: B succeeded, A failed

    @property
    def p_two_sided(self) -> float:
        return binomial_two_sided_p(self.a_only, self.b_only)

    @property
    def p_a_better(self) -> float:
        return binomial_one_sided_p(self.a_only, self.b_only)

    def to_dict(self) -> dict:
        return {"pairs": self.pairs, "success_a": self.success_a, "success_b": self.success_b,
                "rate_a": self.success_a / self.pairs, "rate_b": self.success_b / self.pairs,
                "a_only": self.a_only, "b_only": self.b_only,
                "p_two_sided": self.p_two_sided, "p_a_better": self.p_a_better}


def paired(a: Outcomes, b: Outcomes, keys: Iterable[tuple[str, int]]) -> PairedResult:
    keys = list(keys)
    return PairedResult(
        pairs=len(keys),
        success_a=sum(a[k] for k in keys), success_b=sum(b[k] for k in keys),
        a_only=sum(a[k] and not b[k] for k in keys), b_only=sum(b[k] and not a[k] for k in keys))


def compare_outcomes(a: Outcomes, b: Outcomes) -> dict:
    """Per task, per repeat (keys with one) and overall paired results over the episodes both ran."""
    common = sorted(set(a) & set(b))
    if not common:
        raise DataError("the two evaluations share no (task, seed) episode; evaluate both with the same "
                        "--seed and --episodes")
    tasks = sorted({key[0] for key in common})
    result = {
        "tasks": {t: paired(a, b, [k for k in common if k[0] == t]).to_dict() for t in tasks},
        "overall": paired(a, b, common).to_dict(),
        "unpaired_a": len(set(a) - set(b)), "unpaired_b": len(set(b) - set(a)),
    }
    repeats = sorted({key[2] for key in common if len(key) > 2})
    if repeats:
        result["repeats"] = {r: paired(a, b, [k for k in common if k[2] == r]).to_dict() for r in repeats}
    return result
