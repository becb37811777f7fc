"""`offramp slices save STUDY SLICE_ID --name NAME`: declare a discovered slice in its feature, so
the next study reports it like any declared slice. Registers on the one `offramp` app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from offramp.flows.cli import _usage, app, console, err_console

slices_app = typer.Typer(no_args_is_help=True, help="Discovered slices: declare one in its feature.")
app.add_typer(slices_app, name="slices")


@slices_app.command("save")
def slices_save(
    study_id: Annotated[str, typer.Argument(help="the study that discovered the slice")],
    slice_id: Annotated[str, typer.Argument(help="the slice id, as the report shows it (e.g. 3-1)")],
    name: Annotated[str, typer.Option("--name", help="the declared slice's name (NAME=yes / NAME=no)")],
    feature_dir: Annotated[Path | None, typer.Option(
        "--feature", help="the feature folder (default: where the study's feature.yaml was loaded from)")] = None,
) -> None:
    """Write the slice's example ids to <feature>/slices/NAME.csv and add it to feature.yaml's
    `data.slice_files` (comments kept; when the file's layout cannot be edited safely, the lines
    to add are printed instead)."""
    from offramp.tasks.feature.slice_save import save_slice
    from offramp.tasks.feature.spec import load_feature
    from offramp.warehouse import Warehouse, warehouse_path
    from offramp.warehouse.discovered import discovered_slice, slice_ids

    wh = Warehouse(warehouse_path())
    found = discovered_slice(wh, study_id, slice_id)
    if found is None:
        known = slice_ids(wh, study_id)
        raise _usage(f"study {study_id!r} has no discovered slice {slice_id!r}; "
                     + (f"its slices: {', '.join(known)}" if known else "it has none (see `offramp report STUDY`)"))
    if feature_dir is None and not found["spec_path"]:
        raise _usage(f"the warehouse does not say where feature {found['feature']!r} lives: pass --feature FOLDER")
    feature = load_feature(feature_dir or Path(found["spec_path"]))
    if feature.spec.name != found["feature"]:
        raise _usage(f"{feature.spec_path}: feature {feature.spec.name!r}, but study {study_id} is of {found['feature']!r}")
    saved = save_slice(feature.spec_path, name, found["member_ids"], {e.id for e in feature.examples})
    console.print(f"slice {slice_id} ({found['size']} examples) -> {saved.csv_path}")
    if saved.yaml_written:
        console.print(f"{saved.spec_path}: declared `data.slice_files: {name}` (the next study reports {name}=yes / {name}=no)")
    elif saved.already:
        console.print(f"{saved.spec_path} already declares {name}; its example ids were rewritten")
    else:
        err_console.print(f"{saved.spec_path} was left as it is (its layout could not be edited safely); add:\n{saved.lines}",
                          soft_wrap=True, markup=False)
