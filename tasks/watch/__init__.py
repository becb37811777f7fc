"""Watching retirements: deprecation sources and matching, the feature registry, releases."""

from offramp._lazy import lazy_exports

__all__ = ["Assessment", "Notice", "RegisteredFeature", "assess", "discover", "load_release", "promote", "rollback"]
__getattr__ = lazy_exports(__name__, {
    "Assessment": ".deprecations", "Notice": ".deprecations", "assess": ".deprecations",
    "RegisteredFeature": ".registry", "discover": ".registry", "load_release": ".releases", "promote": ".releases",
    "rollback": ".releases",
})
