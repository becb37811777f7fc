"""The work: the Prefect tasks of a study and the functions they call, grouped by seam.

- `gateway/`: every model call (litellm, cache, retries, spend cap), prices, the local model
  zoo, the DSPy bridge, plugins.
- `feature/`: a feature's spec and examples, prompts, metrics, DSPy programs, evaluation.
- `search/`: the Optuna ask/tell loop with racing, the Pareto front.
- `study/`: the Prefect tasks a migration composes (prepare, trials stage by stage, the search
  bound to the warehouse).
- `evidence/`: paired statistics, the selection policy, judging the front, the report.
- `watch/`: deprecation sources, the feature registry, releases.
"""
