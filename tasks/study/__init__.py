"""The Prefect tasks a migration study is made of: each takes values and returns values."""

from offramp._lazy import lazy_exports

__all__ = ["StudyContext", "TrialRun", "evaluate_full", "evaluate_stage", "search_study"]
__getattr__ = lazy_exports(__name__, {
    "StudyContext": ".trials", "TrialRun": ".trials", "evaluate_full": ".trials", "evaluate_stage": ".trials",
    "search_study": ".search",
})
