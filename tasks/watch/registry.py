"""The feature registry: which features exist under a root folder and which models they use.

A feature is a folder with a `feature.yaml`. It uses its incumbent's model (what
`migrate-feature` migrates from) and, once a release is pinned (`offramp promote`), the current
release's model. Only specs are read here, never the data files: scanning stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from offramp.errors import UserError
from offramp.tasks.feature.spec import load_spec
from offramp.tasks.watch.releases import list_releases, releases_dir
from offramp.warehouse.home import OfframpSettings


def features_root(explicit: Path | str | None = None) -> Path:
    """`--features`, else `OFFRAMP_FEATURES`, else `./features`."""
    return Path(explicit or OfframpSettings().features).expanduser().resolve()


@dataclass(frozen=True)
class RegisteredFeature:
    name: str
    dir: str
    spec_path: str
    incumbent_model: str
    release_model: str | None = None
    release_version: int | None = None
    search_space: str | None = None  # resolved: an absolute YAML path or a name under search_spaces/
    description: str = ""
    spec_hash: str = ""
    spec: dict | None = field(default=None, compare=False, repr=False)  # the validated spec, as JSON

    def models(self) -> dict[str, str]:
        """model -> role (`incumbent`, `release`, or `incumbent+release`)."""
        roles = {self.incumbent_model: "incumbent"}
        if self.release_model:
            roles[self.release_model] = "incumbent+release" if self.release_model in roles else "release"
        return roles


def _space_ref(spec_dir: Path, value: str | None) -> str | None:
    if value is None:
        return None
    candidate = (spec_dir / value).resolve()
    return str(candidate) if value.endswith((".yaml", ".yml")) or candidate.exists() else value


def discover(root: Path | str, *, releases: Path | str | None = None) -> tuple[list[RegisteredFeature], list[str]]:
    """Every feature under `root` (its subfolders with a feature.yaml, or `root` itself), and one
    problem line per folder that could not be read (a bad spec does not hide the others)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        return [], [f"{root}: features root is not a folder (set --features or OFFRAMP_FEATURES)"]
    specs = [root / "feature.yaml"] if (root / "feature.yaml").exists() else sorted(root.glob("*/feature.yaml"))
    found: list[RegisteredFeature] = []
    problems: list[str] = []
    names: dict[str, Path] = {}
    for path in specs:
        try:
            spec = load_spec(path)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if spec.name in names:
            problems.append(f"{path}: field `name`: {spec.name!r} is also the name of {names[spec.name]}; feature names must be unique")
            continue
        names[spec.name] = path
        release_model = release_version = None
        if (releases_dir(releases) / f"{spec.name}.json").exists():
            try:
                current, entries = list_releases(spec.name, directory=releases)
                entry = next(e for e in entries if e["version"] == current)
                # a declared model retires under its litellm id, not the name the study gave it
                release_model, release_version = (entry.get("endpoint") or {}).get("id") or entry["model"], current
            except (UserError, StopIteration, KeyError) as exc:
                problems.append(f"release of {spec.name}: {exc}")
        found.append(RegisteredFeature(
            name=spec.name, dir=str(path.parent), spec_path=str(path), incumbent_model=(
                spec.incumbent.endpoint.id if spec.incumbent.endpoint else spec.incumbent.model),
            release_model=release_model, release_version=release_version,
            search_space=_space_ref(path.parent, spec.search_space), description=spec.description,
            spec_hash=spec.spec_hash(), spec=spec.model_dump(mode="json"),
        ))
    if not specs:
        problems.append(f"{root}: no feature.yaml in it or in its subfolders")
    return found, problems
