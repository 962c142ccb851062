"""The method's steps, one public function each; the Debugger is a short facade over them.

Each step takes its component, its inputs and an explicit cache (``None`` for none), and returns
a result dataclass, so any step can be called, tested or replaced on its own:

1. features: [`extract_features`][failmodes.steps.features.extract_features] gives
   [`Features`][failmodes.results.Features];
2. failures: [`find_failures`][failmodes.steps.failures.find_failures] gives a
   [`FailureSet`][failmodes.results.FailureSet];
3. proposals: [`propose`][failmodes.steps.proposals.propose] gives ``{class: [value, ...]}``;
4. captions: [`caption_failures`][failmodes.steps.captions.caption_failures] gives
   [`FailureModes`][failmodes.results.FailureModes];
5. generation: [`generate`][failmodes.steps.generation.generate] gives a
   [`GeneratedSet`][failmodes.results.GeneratedSet];
6. fit: [`fit_head`][failmodes.steps.repair.fit_head] gives a new ``nn.Linear``, and
   [`select_head`][failmodes.steps.selection.select_head] fits candidates and chooses one on
   the validation part: a [`Selection`][failmodes.steps.selection.Selection];
7. repair: [`repair`][failmodes.steps.plans.repair] runs a
   [`RepairPlan`][failmodes.steps.plans.RepairPlan] (what to generate, which candidates to try:
   [`targeted_plan`][failmodes.steps.plans.targeted_plan],
   [`baseline_plans`][failmodes.steps.plans.baseline_plans]) with generation and selection: a
   [`Repair`][failmodes.steps.plans.Repair];
8. evaluation: [`evaluate`][failmodes.steps.evaluation.evaluate] gives
   ``{split: accuracy}``.

The steps that map over data (extraction, captioning, generation, filtering) cut their work
into independent jobs and hand them to the engine in use
([`failmodes.engines`][failmodes.engines]), with or without a cache.
"""

from failmodes.steps._common import derive_seed
from failmodes.steps.captions import caption_accuracy, caption_failures
from failmodes.steps.evaluation import (
    accuracy,
    check_extra,
    evaluate,
    evaluate_modes,
    evaluate_run,
    group_accuracy,
    loss,
)
from failmodes.steps.failures import (
    check_failures_of,
    check_validation,
    find_failures,
    guard_counts,
    guard_split,
    real_set,
    sample_successes,
    validation_splits,
)
from failmodes.steps.features import (
    check_guard,
    check_sets,
    check_test,
    extract_features,
    generated_features,
    original_head,
    read_labels,
    warn_missing_classes,
)
from failmodes.steps.generation import check_outputs, generate, make_requests, source_pool
from failmodes.steps.plans import (
    Repair,
    RepairPlan,
    RepairTools,
    Trial,
    baseline_plans,
    baseline_requests,
    given_plan,
    lam_candidates,
    preferred_rung,
    real_plan,
    real_weights,
    repair,
    targeted_counts,
    targeted_plan,
)
from failmodes.steps.proposals import check_enough_values, propose
from failmodes.steps.repair import fit_head
from failmodes.steps.selection import Candidate, Selection, select_head, selection_table

__all__ = [
    "Candidate",
    "Repair",
    "RepairPlan",
    "RepairTools",
    "Selection",
    "Trial",
    "accuracy",
    "baseline_plans",
    "baseline_requests",
    "caption_accuracy",
    "caption_failures",
    "check_enough_values",
    "check_extra",
    "check_failures_of",
    "check_guard",
    "check_outputs",
    "check_sets",
    "check_test",
    "check_validation",
    "derive_seed",
    "evaluate",
    "evaluate_modes",
    "evaluate_run",
    "extract_features",
    "find_failures",
    "fit_head",
    "generate",
    "generated_features",
    "given_plan",
    "group_accuracy",
    "guard_counts",
    "guard_split",
    "lam_candidates",
    "loss",
    "make_requests",
    "original_head",
    "preferred_rung",
    "propose",
    "read_labels",
    "real_plan",
    "real_set",
    "real_weights",
    "repair",
    "sample_successes",
    "select_head",
    "selection_table",
    "source_pool",
    "targeted_counts",
    "targeted_plan",
    "validation_splits",
    "warn_missing_classes",
]
