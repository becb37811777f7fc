"""A feature: its spec and examples, how a config prompts a model and parses the answer, the
metric, the DSPy programs of the prompt strategies, and evaluating a config on examples."""

from offramp._lazy import lazy_exports

__all__ = [
    "Evaluation", "Example", "Feature", "FeatureSpec", "Metric", "Splits", "build_metric", "compile_program",
    "evaluate_config", "load_feature", "load_spec", "split_examples",
]
__getattr__ = lazy_exports(__name__, {
    "Example": ".spec", "Feature": ".spec", "FeatureSpec": ".spec", "Splits": ".spec", "load_feature": ".spec",
    "load_spec": ".spec", "split_examples": ".spec", "Metric": ".metrics", "build_metric": ".metrics",
    "compile_program": ".programs", "Evaluation": ".evaluate", "evaluate_config": ".evaluate",
})
