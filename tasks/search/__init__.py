"""The multi-objective search: Optuna ask/tell with racing and hard limits; the Pareto front."""

from offramp._lazy import lazy_exports

__all__ = ["DIRECTIONS", "Limits", "Point", "SearchResult", "TrialOutcome", "dominates", "pareto_front", "run_search"]
__getattr__ = lazy_exports(__name__, {
    "DIRECTIONS": ".ask_tell", "Limits": ".ask_tell", "SearchResult": ".ask_tell", "TrialOutcome": ".ask_tell",
    "run_search": ".ask_tell", "Point": ".pareto", "dominates": ".pareto", "pareto_front": ".pareto",
})
