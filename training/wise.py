"""WiSE-FT: the tuned weights interpolated with the base's (Wortsman et al., 2022).

theta(alpha) = (1 - alpha) * theta_base + alpha * theta_tuned. Fine-tuning on a few hundred captions
pulls the model toward the user's words and away from everything else; a point on the line between the
two keeps most of the gain and most of the general knowledge. alpha is chosen on the held-out split:
the best held-out R@5 among the alphas whose agreement (see `evaluate`) stays >= 0.7; when none does,
the one with the highest agreement. Ties go to the smaller alpha (less drift for the same recall; on
benchmarks/finetune.py breaking ties by mean rank chose alpha 1 and found the names less often).

The guard holds only where the base has everyday knowledge to keep: when its top photos for different
everyday prompts are nearly the same photos (`evaluate.prompt_overlap` >= KNOWS_NOTHING, as with random
weights), agreement measures noise, so it is reported but not enforced (`enforce=False`).
"""
from __future__ import annotations

ALPHAS = (0.25, 0.5, 0.75, 1.0)
MIN_AGREEMENT = 0.7
KNOWS_NOTHING = 0.2   # prompt overlap beyond chance past which the base tells no everyday prompts apart


def interpolate(base: dict, tuned: dict, alpha: float) -> dict:
    """A state dict between two of the same model (non-float entries are taken from `tuned`)."""
    out = {}
    for k, t in tuned.items():
        b = base[k]
        out[k] = b.to(t.dtype) * (1 - alpha) + t * alpha if t.is_floating_point() else t
    return out


def choose(candidates: list[dict], min_agreement: float = MIN_AGREEMENT, enforce: bool = True) -> dict:
    """The chosen one of [{"alpha", "r5", "agreement", ...}] (see the module docstring)."""
    if not enforce:
        min_agreement = 0.0
    def r5(c):
        return c.get("r5") if c.get("r5") is not None else -1.0

    def agree(c):
        return c.get("agreement") if c.get("agreement") is not None else 1.0

    kept = [c for c in candidates if agree(c) >= min_agreement]
    if kept:
        return max(kept, key=lambda c: (r5(c), -c["alpha"]))
    return max(candidates, key=lambda c: (agree(c), r5(c), -c["alpha"]))
