"""A run as one flat JSON-ready dictionary: the keys of ``failmodes demo``'s ``summary.json``.

A method's keys are prefixed by its name (``uniform_heldout_acc_after``), the targeted repair's
by nothing (``heldout_acc_after``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from failmodes.methods import BASELINES, METHODS, SPLITS

if TYPE_CHECKING:
    from failmodes.results import RunResult

__all__ = ["kept_original", "ladder_sentence", "run_summary"]

SHORT = {"test": "test", "debug_seed": "seed", "debug_heldout": "heldout"}
"""How a split is named in the summary's keys."""


def run_summary(result: RunResult) -> dict[str, Any]:
    """The summary of ``result`` (see [`RunResult.summary`][failmodes.results.RunResult.summary]).

    Strict JSON: an accuracy that cannot be computed (a split without images) is ``None``.

    Args:
        result: the run.

    Returns:
        The flat dictionary.

    Raises:
        KeyError: if ``result.accuracy`` lacks the ``before`` or ``failmodes`` method.
    """
    acc = result.accuracy
    out: dict[str, Any] = {"test_acc_before": acc["before"]["test"]}
    out.update((f"{SHORT[split]}_acc_after", acc["failmodes"][split]) for split in SHORT)
    for method in (m for m in ("dfr", *BASELINES) if m in acc):
        out.update((f"{method}_{s}_acc_after", acc[method][split]) for split, s in SHORT.items())
    for split in (split for split in acc["before"] if split not in SPLITS):  # guard, extra
        out[f"{split}_acc_before"] = acc["before"][split]
        for method in (m for m in METHODS if m != "before" and m in acc):
            out[f"{_prefix(method)}{split}_acc_after"] = acc[method][split]
    if result.chosen is not None:
        out["chosen_method"] = result.chosen
        out["n_real"] = result.n_real
    out["ladder"] = ladder_sentence(result)
    if "guard" in result.config:
        source = result.config.get("guard_source")
        out["guard_given"] = source == "given" if source else bool(result.config["guard"])
        if source:
            out["guard_source"] = source
        out["kept_original"] = bool(result.config.get("kept_original", False))
    out.update(_mode_summary(result))
    for method in METHODS:
        worst = result.worst_group(method)
        if worst is not None:
            out[f"{method}_worst_group_test_acc"] = worst
    out.update(
        n_failures=int(len(result.failures.seed) + len(result.failures.heldout)),
        n_seed=int(len(result.failures.seed)),
        n_heldout=int(len(result.failures.heldout)),
        n_generated=len(result.generated),
        n_filtered_out=result.generated.n_filtered_out,
        caption_accuracy=result.caption_accuracy,
        failure_modes=result.modes.modes,
        descriptions=result.modes.describe(),
        config=result.config,
        seconds=result.seconds,
    )
    return _strict(out)


def _strict(value: Any) -> Any:
    """``value`` with every NaN as ``None``, so that it is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    return value


def _prefix(method: str) -> str:
    return "" if method == "failmodes" else f"{method}_"


def _mode_summary(result: RunResult) -> dict[str, float | None]:
    """The keys of ``mode_accuracy`` (none when it is unknown)."""
    if result.mode_accuracy is None:
        return {}
    out: dict[str, float | None] = {"heldout_in_modes_share": result.mode_accuracy.share}
    for method, sides in result.mode_accuracy.accuracy.items():
        for side, value in sides.items():
            out[f"{_prefix(method)}heldout_{side}_acc_after"] = value  # NaN: None, by _strict
    return out


def ladder_sentence(result: RunResult) -> str:
    """Which rung of the repair paid, in words, from the run's held-out failures.

    Args:
        result: the run.

    Returns:
        ``"refitting on the 109 debug_seed failures fixes 0.549 of the held-out failures;
        adding 1,840 generated images, 0.637; validation prefers generated images on top
        (failmodes)"``,
        with a note for a rung whose every candidate the guard refused; with an empty
        validation part, no preference is claimed: the rung reported was taken, not chosen.
    """
    acc, kept = result.accuracy, kept_original(result)
    generated = f"{len(result.generated):,} generated images"
    fixed = f"{acc['failmodes']['debug_heldout']:.3f}{kept.get('failmodes', '')}"
    if "dfr" not in acc:
        return f"the targeted repair with {generated} fixes {fixed} of the held-out failures"
    what = "debug_seed failures" + (
        " and successes" if result.config.get("real") == "failures_and_successes" else ""
    )
    parts = [
        f"refitting on the {result.n_real:,} {what} fixes "
        f"{acc['dfr']['debug_heldout']:.3f}{kept.get('dfr', '')} of the held-out failures",
        f"adding {generated}, {fixed}",
    ]
    if result.chosen is not None and not len(result.failures.validation):
        parts.append(
            f"the validation part is empty, so nothing chose between them ({result.chosen} is "
            "taken, not preferred)"
        )
    elif result.chosen is not None:
        chosen = "its own images alone" if result.chosen == "dfr" else "generated images on top"
        parts.append(f"validation prefers {chosen} ({result.chosen})")
    return "; ".join(parts)


def kept_original(result: RunResult) -> dict[str, str]:
    """``{method: note}`` for the repairs whose every candidate the guard refused.

    Args:
        result: the run.

    Returns:
        The methods whose selection chose no row (the original head was kept), with the note
        the words add.
    """
    table = result.selection
    if table is None or "chosen" not in getattr(table, "columns", ()):
        return {}
    refused = [m for m, rows in table.groupby("method", sort=False) if not rows["chosen"].any()]
    return {m: " (the guard refused every candidate: the original head was kept)" for m in refused}
