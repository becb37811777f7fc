from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from offramp.errors import UserError
from offramp.tasks.feature.spec import load_feature, split_examples
from tests.conftest import BANK
from tests.helpers import make_feature


def edit(root: Path, change) -> None:
    spec = yaml.safe_load((root / "feature.yaml").read_text())
    change(spec)
    (root / "feature.yaml").write_text(yaml.safe_dump(spec))


def test_bundled_feature_loads():
    feature = load_feature(BANK)
    assert feature.spec.name == "bank-support-routing"
    assert len(feature.examples) > 10_000
    assert {e.outputs["queue"] for e in feature.examples} == set(feature.spec.signature.outputs[0].labels)


def test_splits_are_disjoint_deterministic_and_capped(tmp_path):
    feature = load_feature(make_feature(tmp_path / "f"))
    a, b = split_examples(feature), split_examples(feature)
    assert a == b
    ids = [e.id for split in (a.train, a.dev, a.test) for e in split]
    assert len(ids) == len(set(ids)) == 60
    capped = split_examples(feature, max_examples=5)
    assert (len(capped.train), len(capped.dev), len(capped.test)) == (20, 5, 5)
    assert split_examples(feature, seed=99) != a


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.pop("metric"), r"field `metric`: Field required"),
        (lambda s: s.update(metric="bleu"), r"field `metric.name`"),
        (lambda s: s.update(metric={"function": "not a path"}), r"field `metric.function`"),
        (lambda s: s["signature"]["outputs"][0].pop("labels"), r"needs `labels`"),
        (lambda s: s["data"]["columns"].pop("label"), r"data.columns must map every signature field.*label"),
        (lambda s: s["splits"].update(dev=0), r"field `splits.dev`"),
        (lambda s: s.update(name="Has Spaces"), r"field `name`"),
        (lambda s: s.update(surprise=1), r"field `surprise`: Extra inputs"),
    ],
)
def test_invalid_specs_name_file_and_field(tmp_path, change, expected):
    root = make_feature(tmp_path / "f")
    edit(root, change)
    with pytest.raises(UserError, match=expected) as info:
        load_feature(root)
    assert str(root / "feature.yaml") in str(info.value)


def test_malformed_yaml(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    (root / "feature.yaml").write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_feature(root)


def test_missing_feature_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_feature(tmp_path / "nothing")


def test_missing_data_file(tmp_path):
    root = make_feature(tmp_path / "f")
    edit(root, lambda s: s["data"]["files"][0].update(path="gone.csv"))
    with pytest.raises(UserError, match=r"data.files.path.*gone.csv"):
        load_feature(root)


def test_missing_column(tmp_path):
    root = make_feature(tmp_path / "f")
    edit(root, lambda s: s["data"]["columns"].update(text="body"))
    with pytest.raises(UserError, match=r"no column\(s\) \['body'\]"):
        load_feature(root)


def test_empty_dataset(tmp_path):
    root = make_feature(tmp_path / "f")
    (root / "data.csv").write_text("id,text,label,group\n")
    with pytest.raises(UserError, match="hold no examples"):
        load_feature(root)


def test_label_outside_the_label_set(tmp_path):
    root = make_feature(tmp_path / "f")
    with (root / "data.csv").open("a") as handle:
        handle.write("bad1,some text,delta,g1\n")
    with pytest.raises(UserError, match=r"'delta' is not one of signature labels"):
        load_feature(root)


def test_jsonl_with_json_output_and_user_metric(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    (root / "data.jsonl").write_text('{"q": "a", "a": {"x": 1}}\n{"q": "b", "a": {"x": 2}}\n{"q": "c", "a": {"x": 3}}\n')
    (root / "my_metric.py").write_text("def score(gold, pred):\n    return float(gold['answer'] == pred['answer'])\n")
    spec = {
        "name": "extract",
        "signature": {"inputs": [{"name": "question"}],
                      "outputs": [{"name": "answer", "type": "json", "json_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}}]},
        "incumbent": {"model": "fake/old", "instructions": "Extract."},
        "data": {"files": [{"path": "data.jsonl"}], "columns": {"question": "q", "answer": "a"}},
        "metric": {"function": "my_metric:score"},
        "splits": {"train": 1, "dev": 1, "test": 1},
    }
    (root / "feature.yaml").write_text(yaml.safe_dump(spec))
    feature = load_feature(root)
    assert feature.examples[0].outputs == {"answer": {"x": 1}}
    from offramp.tasks.feature.metrics import build_metric

    metric = build_metric(feature)
    assert metric.score({"answer": {"x": 1}}, {"answer": {"x": 1}}) == 1.0


def test_split_larger_than_data(tmp_path):
    root = make_feature(tmp_path / "f", n=30)
    with pytest.raises(UserError, match=r"splits.*60 examples requested.*30"):
        split_examples(load_feature(root))


def test_feature_yaml_that_is_not_utf8(tmp_path):
    root = make_feature(tmp_path / "f")
    spec = root / "feature.yaml"
    spec.write_bytes(spec.read_bytes().replace(b"test feature", b"caf\xe9 feature"))  # latin-1 e-acute
    with pytest.raises(UserError, match=r"feature\.yaml: line 2: byte b'\\xe9' is not UTF-8; expected a UTF-8 text file"):
        load_feature(root)


def test_csv_data_that_is_not_utf8(tmp_path):
    root = make_feature(tmp_path / "f")
    data = root / "data.csv"
    lines = data.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"message", b"m\xe9ssage")
    data.write_bytes(b"\n".join(lines))
    with pytest.raises(UserError, match=r"data\.csv: line 5: byte b'\\xe9' is not UTF-8; expected a UTF-8 text file"):
        load_feature(root)


def test_jsonl_data_that_is_not_utf8(tmp_path):
    root = make_feature(tmp_path / "f")
    (root / "data.jsonl").write_bytes(b'{"id": "a", "text": "ok", "label": "alpha", "group": "g"}\n'
                                      b'{"id": "b", "text": "\xff", "label": "beta", "group": "g"}\n')
    edit(root, lambda s: s["data"]["files"][0].update(path="data.jsonl"))
    with pytest.raises(UserError, match=r"data\.jsonl: line 2: byte b'\\xff' is not UTF-8"):
        load_feature(root)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("bad1,hello, world,alpha,g1", r"data\.csv: row 61 \(line 62\) has 5 fields, but the header has 4 \(id, text, label, group\)"),
        ("bad1,hello,alpha", r"data\.csv: row 61 \(line 62\) has 3 fields, but the header has 4"),
    ],
)
def test_csv_row_with_a_field_count_unlike_the_header(tmp_path, row, expected):
    root = make_feature(tmp_path / "f")
    with (root / "data.csv").open("a") as handle:
        handle.write(row + "\n")
    with pytest.raises(UserError, match=expected):
        load_feature(root)


POSTS = BANK.parent / "post-entity-type"


def test_second_bundled_feature_loads_with_slices_and_splits():
    """The WNUT17 feature: every label occurs, both slice columns are filled, and offramp's own
    stratified splits hold every label on dev and test (so per-label slices can be compared)."""
    feature = load_feature(POSTS)
    labels = feature.spec.signature.outputs[0].labels
    assert feature.spec.name == "post-entity-type" and feature.spec.incumbent.model == "local/qwen2.5-0.5b"
    assert len(feature.examples) > 2_000
    assert {e.outputs["entity_type"] for e in feature.examples} == set(labels)
    assert {e.slices["wnut_split"] for e in feature.examples} == {"train", "dev", "test"}
    assert all(e.slices["entity_type"] == e.outputs["entity_type"] and e.inputs["post"].strip() for e in feature.examples)
    splits = split_examples(feature)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (300, 80, 120)
    assert {e.outputs["entity_type"] for e in splits.test} == set(labels)


def test_second_bundled_feature_data_is_what_its_builder_makes_and_is_licensed():
    """posts.csv is exactly what build_data.py makes from the vendored WNUT17 files, and the
    license travels with the data."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(POSTS / "build_data.py"), "--check", "--quiet"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Attribution 4.0 International" in (POSTS / "data" / "wnut17" / "LICENSE.txt").read_text()
    readme = (POSTS / "README.md").read_text()
    assert "CC BY 4.0" in readme and "Derczynski" in readme
