"""The evidence: paired statistics against the incumbent, the selection policy, judging the
front on the held-out split, and the report (terminal, markdown, HTML)."""

from offramp._lazy import lazy_exports

__all__ = ["Comparison", "SelectionPolicy", "Selection", "StudyReport", "compare_paired", "judge_front", "load_report",
           "select_release"]
__getattr__ = lazy_exports(__name__, {
    "Comparison": ".compare", "compare_paired": ".compare", "SelectionPolicy": ".policy", "Selection": ".policy",
    "select_release": ".policy", "judge_front": ".judge", "StudyReport": ".report", "load_report": ".report",
})
