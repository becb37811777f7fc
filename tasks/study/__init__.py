"""The study's Prefect tasks (values in, values out: any task runner can run them) and the flow
process's bookkeeping around them (the warehouse's one writer)."""

from offramp._lazy import lazy_exports

__all__ = [
    "CompileJob", "EvalJob", "Prepared", "SearchSettings", "StudyContext", "StudyInputs", "TrialRun", "compile_strategy",
    "ensure_local_models", "evaluate_examples", "evaluate_full", "prepare", "preflight", "run_stage", "search_study",
]
__getattr__ = lazy_exports(__name__, {
    "CompileJob": ".trials", "EvalJob": ".trials", "StudyContext": ".trials", "TrialRun": ".trials",
    "compile_strategy": ".trials", "evaluate_examples": ".trials", "evaluate_full": ".trials", "run_stage": ".trials",
    "Prepared": ".prepare", "StudyInputs": ".prepare", "ensure_local_models": ".prepare", "prepare": ".prepare",
    "preflight": ".prepare", "SearchSettings": ".search", "search_study": ".search",
})
