"""Bring your own data: a declared schema (pydantic), files checked against it
with file:line:column errors, PNG images, K classes, held-out evaluation on
the operator's own split, and the schema hash declared on-chain."""

from __future__ import annotations

import csv
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator import ConfigError
from nodes._data import DataFileError, holdout, split_peers
from nodes._eval import utility
from nodes._model import build_model, config_for_schema, get_flat
from nodes._schema import (SYNTHETIC, Schema, load_schema, load_with_schema, parse_schema,
                           schema_hash)
from nodes._train import TrainConfig, class_proba, per_example_loss, train_local

torch.set_num_threads(1)

K = 5
SCHEMA_TOML = """
[schema]
label = "stars"
classes = ["1", "2", "3", "4", "5"]
text = ["title", "review"]
image = "photo"
image_size = 32

[[schema.numeric]]
name = "price"
norm = "log1p"
mean = 3.0
std = 1.0

[[schema.numeric]]
name = "rating_count"
norm = "minmax"
min = 0
max = 500

[[schema.numeric]]
name = "dwell_seconds"
norm = "standard"
mean = 60
std = 30

[[schema.categorical]]
name = "category"
categories = ["shoes", "phones", "books"]
unknown = "other"
"""

WORDS = {1: "awful broken", 2: "poor flimsy", 3: "okay fine", 4: "good solid", 5: "excellent perfect"}


def write_dataset(root: Path, n: int = 60, seed: int = 0, *, name: str = "shop.csv") -> Path:
    """A small 5-class shop: text, a 32×32 PNG per row (colour by class),
    three numeric columns and a category, all carrying label signal."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        y = int(rng.integers(1, K + 1))
        px = np.clip(rng.normal(40 * y, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        px[..., y % 3] = 255 - px[..., y % 3]
        Image.fromarray(px).save(root / "img" / f"{i}.png")
        rows.append({"title": f"item {i}", "review": f"{WORDS[y]} product",
                     "photo": f"img/{i}.png", "price": f"{np.exp(rng.normal(3, 1)):.2f}",
                     "rating_count": str(int(rng.integers(0, 100 * y))),
                     "dwell_seconds": f"{rng.normal(20 * y, 10):.1f}",
                     "category": ["shoes", "phones", "books", "toys"][i % 4], "stars": str(y)})
    path = root / name
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Schema, Path]:
    (tmp_path / "schema.toml").write_text(SCHEMA_TOML)
    return load_schema(tmp_path / "schema.toml"), write_dataset(tmp_path)


def test_schema_parses_and_encodes_every_declared_column(shop: tuple[Schema, Path]) -> None:
    schema, path = shop
    assert schema.n_classes == 5 and schema.n_features == 3 + 4  # 3 numeric + 3 categories + other
    ex = load_with_schema(path, schema)
    assert len(ex) == 60 and ex.images.shape == (60, 3, 32, 32) and ex.features.shape == (60, 7)
    assert set(ex.labels.tolist()) <= set(range(5)) and ex.has_image.all() and ex.has_text.all()
    rows = list(csv.DictReader(open(path)))
    # price: log1p then standardised; rating_count: min-max; one-hot category, 'toys' → other.
    assert ex.features[0, 0] == pytest.approx(np.log1p(float(rows[0]["price"])) - 3.0, rel=1e-5)
    assert ex.features[1, 1] == pytest.approx(float(rows[1]["rating_count"]) / 500, rel=1e-5)
    assert ex.features[3, 3:].tolist() == [0, 0, 0, 1]
    assert ex.labels[0] == int(rows[0]["stars"]) - 1
    assert "product" in ex.texts[0] and ex.texts[0].startswith("item 0")
    # ImageNet-normalised pixels, not raw bytes.
    assert -3 < ex.images.min() < 0 < ex.images.max() < 3


def test_schema_hash_is_canonical_and_sensitive() -> None:
    a = parse_schema({"label": "y", "classes": ["a", "b"], "text": ["t"]})
    b = parse_schema({"text": ["t"], "classes": ["a", "b"], "label": "y", "image_size": 32})
    assert a.hash() == b.hash() and len(a.hash()) == 32
    c = parse_schema({"label": "y", "classes": ["b", "a"], "text": ["t"]})
    assert c.hash() != a.hash()
    assert schema_hash(None) not in (a.hash(), c.hash())
    # A file declared with the generator's very columns builds another model
    # (image tower, feature constants): it must not pass for the generator.
    assert SYNTHETIC.hash() != schema_hash(None)


@pytest.mark.parametrize("raw, words", [
    ({"label": "y", "classes": ["a"], "text": ["t"]}, "classes"),
    ({"label": "y", "classes": ["a", "a"], "text": ["t"]}, "repeat"),
    ({"label": "y", "classes": ["a", "b"]}, "at least one input"),
    ({"label": "y", "classes": ["a", "b"], "text": ["y"]}, "used twice"),
    ({"label": "y", "classes": ["a", "b"], "numeric": [{"name": "x", "std": 0}]}, "std"),
    ({"label": "y", "classes": ["a", "b"], "text": ["t"], "colour": 1}, "colour"),
])
def test_bad_schema_is_one_line_config_error(raw: dict, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_schema(raw, source="s.toml")
    assert words in str(e.value) and "\n" not in str(e.value) and "s.toml" in str(e.value)


def _rewrite(path: Path, line: int, column: str, value: str) -> None:
    rows = list(csv.DictReader(open(path)))
    rows[line - 2][column] = value
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.parametrize("column, value, words", [
    ("price", "cheap", "is not a number"),
    ("price", "nan", "out of range"),
    ("stars", "6", "not one of the declared classes"),
    ("dwell_seconds", "", "empty"),
    ("photo", "../../etc/passwd", "leaves the data file's folder"),
    ("photo", "img/missing.png", "does not exist"),
    ("dwell_seconds", "1e41", "outside float32"),  # finite in float64: the model got inf → NaN
])
def test_mismatching_row_names_file_line_and_column(shop: tuple[Schema, Path], column: str,
                                                    value: str, words: str) -> None:
    schema, path = shop
    _rewrite(path, 7, column, value)
    header = next(csv.reader(open(path)))
    with pytest.raises(DataFileError) as e:
        load_with_schema(path, schema)
    msg = str(e.value)
    assert msg.startswith(f"{path}:7:{header.index(column) + 1}: column {column!r}"), msg
    assert words in msg and "\n" not in msg


def test_hostile_image_files_are_refused_in_one_line(shop: tuple[Schema, Path]) -> None:
    """From an attack review: a FIFO named as an image blocked forever; a
    1×24M-pixel PNG (46 KB) decoded to 957 MB; a GIF passed for a PNG."""
    import os

    from PIL import Image

    schema, path = shop
    root = path.parent
    os.mkfifo(root / "img" / "fifo.png")
    Image.new("L", (1, 20_000)).save(root / "img" / "tall.png")
    Image.new("RGB", (8, 8)).save(root / "img" / "anim.png", format="GIF")
    header = next(csv.reader(open(path)))
    for ref, words in [("img/fifo.png", "is not a regular file"),
                       ("img/tall.png", "-per-side limit"),
                       ("img/anim.png", "is GIF, not JPEG or PNG")]:
        _rewrite(path, 5, "photo", ref)
        with pytest.raises(DataFileError) as e:
            load_with_schema(path, schema)
        msg = str(e.value)
        assert msg.startswith(f"{path}:5:{header.index('photo') + 1}:") and words in msg, msg


def test_csv_headers_duplicates_bom_and_spaces(shop: tuple[Schema, Path]) -> None:
    schema, path = shop
    text = path.read_text()
    header, rest = text.split("\n", 1)
    path.write_text("\ufeff" + ", ".join(header.split(",")) + "\n" + rest)  # Excel's BOM, ", "
    assert len(load_with_schema(path, schema)) == 60
    path.write_text(header + ",stars\n" + "\n".join(r + ",1" for r in rest.splitlines()) + "\n")
    with pytest.raises(DataFileError, match=r"shop.csv:1: column name\(s\) 'stars' appear more"):
        load_with_schema(path, schema)


def test_hostile_jsonl_lines_give_one_line_errors(tmp_path: Path) -> None:
    schema = parse_schema({"label": "y", "classes": ["0", "1"], "numeric": [{"name": "x"}]})
    cases = {"bigint.jsonl": ('{"y": 1, "x": 1' + "0" * 400 + "}", "is not a number"),
             "dupkey.jsonl": ('{"y": 1, "x": 2, "y": 0}', "field 'y' appears more than once"),
             "long.jsonl": ('{"y": 1, "x": 2, "pad": "' + "a" * (1 << 20) + '"}', "line longer")}
    for name, (line, words) in cases.items():
        (tmp_path / name).write_text(line + "\n")
        with pytest.raises(DataFileError, match=f"{name}:1: .*{words}"):
            load_with_schema(tmp_path / name, schema)


def test_deep_nesting_is_a_one_line_error_not_a_segfault(tmp_path: Path) -> None:
    """py-ecc raises the recursion limit to 100 000 on import; the C JSON
    decoder then overflowed the C stack on 200 000 nested brackets (exit 139)."""
    (tmp_path / "s.toml").write_text(SCHEMA_TOML)
    (tmp_path / "deep.jsonl").write_text("[" * 200_000 + "]" * 200_000 + "\n")
    proc = _cli("node", "schema", "check", "--schema", str(tmp_path / "s.toml"),
                "--file", str(tmp_path / "deep.jsonl"), timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    assert proc.stderr.strip().splitlines()[-1].endswith("nested too deeply)"), proc.stderr
    (tmp_path / "deep.toml").write_text("a = " + "[" * 50_000 + "]" * 50_000 + "\n")
    proc = _cli("node", "schema", "check", "--schema", str(tmp_path / "deep.toml"), timeout=120)
    assert proc.returncode == 2 and "nested too deeply" in proc.stderr, proc.stderr[-500:]


def test_a_schema_wider_than_the_feature_limit_is_refused() -> None:
    from nodes._schema import MAX_FEATURES

    cats = [{"name": f"c{i}", "categories": [str(j) for j in range(1000)]} for i in range(17)]
    with pytest.raises(ConfigError, match=f"17000 feature inputs .* limit of {MAX_FEATURES}"):
        parse_schema({"label": "y", "classes": ["0", "1"], "categorical": cats})


def test_file_missing_a_declared_column_is_refused(shop: tuple[Schema, Path]) -> None:
    schema, path = shop
    text = path.read_text().replace("rating_count", "ratings", 1)
    path.write_text(text)
    with pytest.raises(DataFileError, match=r":2: the file has no column 'rating_count'"):
        load_with_schema(path, schema)


def test_jsonl_rows_and_npy_images(tmp_path: Path) -> None:
    schema = parse_schema({"label": "y", "classes": ["0", "1"], "image": "im", "image_size": 8,
                           "numeric": [{"name": "x", "norm": "none"}]})
    np.save(tmp_path / "a.npy", np.ones((3, 8, 8), np.float32))
    lines = [{"y": 1, "x": 2.5, "im": "a.npy"}, {"y": 0, "x": -1}, {"y": 2, "x": 0}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in lines))
    with pytest.raises(DataFileError, match=r"d.jsonl:3: column 'y': label 2 is not one of"):
        load_with_schema(tmp_path / "d.jsonl", schema)
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in lines[:2]))
    ex = load_with_schema(tmp_path / "d.jsonl", schema)
    assert ex.labels.tolist() == [1, 0] and ex.has_image.tolist() == [True, False]
    assert ex.features[:, 0].tolist() == [2.5, -1.0] and ex.images[0].sum() == 3 * 64


def test_oversized_image_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    import nodes._schema as sch

    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    (tmp_path / "d.csv").write_text("y,im\n1,big.png\n")
    schema = parse_schema({"label": "y", "classes": ["0", "1"], "image": "im"})
    monkeypatch.setattr(sch, "MAX_IMAGE_PIXELS", 200 * 200)
    with pytest.raises(DataFileError, match=r"d.csv:2:2: column 'im': image 'big.png' is 300×300"):
        load_with_schema(tmp_path / "d.csv", schema)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_csv_bytes_give_a_data_error_or_examples(data: bytes) -> None:
    import tempfile

    schema = parse_schema({"label": "y", "classes": ["0", "1"], "text": ["t"],
                           "numeric": [{"name": "x"}], "categorical": [{"name": "c",
                                                                         "categories": ["a"]}]})
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "f.csv"
        p.write_bytes(b"y,t,x,c\n" + data)
        try:
            ex = load_with_schema(p, schema)
        except DataFileError as exc:
            assert "\n" not in str(exc) and str(p) in str(exc)
        else:
            assert np.isfinite(ex.features).all() and set(ex.labels.tolist()) <= {0, 1}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=8, max_size=80), st.integers(0, 10**6))
def test_holdout_is_seeded_stratified_and_disjoint(labels: list[int], seed: int) -> None:
    from nodes._data import Examples

    n = len(labels)
    ex = Examples(tuple(str(i) for i in range(n)), np.zeros((n, 3, 8, 8), np.float32),
                  np.arange(n, dtype=np.float32)[:, None], np.asarray(labels, np.int64),
                  np.ones(n, bool), np.zeros(n, bool))
    a, b = holdout(ex, fraction=0.25, seed=seed), holdout(ex, fraction=0.25, seed=seed)
    assert a.test.texts == b.test.texts
    tr, te = set(a.train.texts), set(a.test.texts)
    assert not tr & te and len(tr | te) == n and te
    for c in set(labels):  # every class with ≥ 2 examples is represented in both halves
        if labels.count(c) >= 2:
            assert c in a.test.labels and c in a.train.labels


def test_split_peers_modes(shop: tuple[Schema, Path]) -> None:
    schema, path = shop
    ex = load_with_schema(path, schema)
    iid = split_peers(ex, 3, mode="iid", seed=0)
    assert sorted(len(p) for p in iid) == [20, 20, 20]
    groups = [r["category"] for r in csv.DictReader(open(path))]
    by = split_peers(ex, 3, mode="by-column", groups=groups, seed=0)
    assert sum(len(p) for p in by) == 60
    seen = [set(np.asarray(groups)[np.isin(ex.texts, p.texts)]) for p in by]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])
    with pytest.raises(ConfigError, match="distinct values"):
        split_peers(ex, 5, mode="by-column", groups=groups)
    d = split_peers(ex, 2, mode="dirichlet", alpha=100.0, seed=1)
    assert sum(len(p) for p in d) == 60


def test_k5_schema_with_png_images_trains_one_local_round(shop: tuple[Schema, Path]) -> None:
    schema, path = shop
    data = holdout(load_with_schema(path, schema), fraction=0.25, seed=0)
    model = build_model(config_for_schema(schema))
    before = get_flat(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_local(model, data.train, cfg=TrainConfig(epochs=2, batch_size=16, lr=1e-2))
    assert res.steps > 0 and np.isfinite(res.loss) and np.isfinite(res.epsilon_rdp)
    assert not np.array_equal(get_flat(model), before)
    p = class_proba(model, data.test)
    assert p.shape == (len(data.test), 5) and np.allclose(p.sum(1), 1, atol=1e-5)
    u = utility(data.test.labels, p)
    assert 0 <= u["accuracy"] <= 1 and set(u) == {"accuracy", "macro_f1", "auc"}
    assert per_example_loss(model, data.test).shape == (len(data.test),)


def test_multiclass_utility_is_real() -> None:
    y = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    perfect = np.eye(5)[y]
    assert utility(y, perfect) == {"accuracy": 1.0, "macro_f1": 1.0, "auc": 1.0}
    wrong = np.eye(5)[(y + 1) % 5]
    assert utility(y, wrong)["accuracy"] == 0.0 and utility(y, wrong)["auc"] < 0.5


def test_k5_png_schema_runs_a_three_round_embedded_federation(tmp_path: Path) -> None:
    """The whole protocol (embedded chain and store, secure aggregation, the
    ledger) on three peers' own 5-class files with PNG images; the schema hash
    is declared on-chain and every peer reports held-out utility."""
    from nodes._demo import DemoConfig, OwnData, run_demo

    (tmp_path / "schema.toml").write_text(SCHEMA_TOML)
    schema = load_schema(tmp_path / "schema.toml")
    parts = []
    for i in range(3):
        d = tmp_path / f"peer{i}"
        d.mkdir()
        parts.append(holdout(load_with_schema(write_dataset(d, n=40, seed=i), schema),
                             fraction=0.25, seed=i))
    cfg = DemoConfig(peers=3, threshold=2, rounds=3, dropouts=False, steps=4, q=0.3,
                     epsilon_cap=50.0, record_rounds=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_demo(cfg, data=OwnData(parts, config_for_schema(schema), schema.hash()))
    assert res["data_schema"] == "0x" + schema.hash().hex()
    assert [r["survivors"] for r in res["rounds"]] == [3, 3, 3]
    assert all(r["verified"].split("/")[0] == r["verified"].split("/")[1].split()[0]
               for r in res["rounds"])
    assert [p["heldout_examples"] for p in res["peers"]] == [len(p.test) for p in parts]
    assert all(0 <= p["heldout_accuracy"] <= 1 and p["epsilon"] > 0 for p in res["peers"])
    assert res["vector_length"] == get_flat(build_model(config_for_schema(schema))).size


def test_peer_with_another_schema_is_refused_by_the_declared_hash(embedded_chain) -> None:
    from coordinator import ContractRevertError
    from coordinator.chain._contracts import deploy_federation
    from nodes._daemon import check_schema

    ours = parse_schema({"label": "y", "classes": ["1", "2", "3", "4", "5"], "text": ["t"]})
    theirs = parse_schema({"label": "y", "classes": ["1", "2", "3", "4"], "text": ["t"]})
    fed, rec = deploy_federation(embedded_chain, data_schema=ours.hash())
    assert fed.data_schema() == ours.hash() and rec["data_schema"] == "0x" + ours.hash().hex()
    ev = fed.events("FedRounds", "DataSchemaSet", 0)
    assert [e.args["schemaHash"] for e in ev] == [ours.hash()]
    assert check_schema(fed, ours.hash()) is True  # the federation's own schema joins
    with pytest.raises(ConfigError, match="declared 0x") as e:
        check_schema(fed, theirs.hash())
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError):
        check_schema(fed, schema_hash(None))
    # Declared once, by the governor only: it cannot be swapped under running peers.
    with pytest.raises(ContractRevertError) as r:
        fed.set_data_schema(theirs.hash())
    assert r.value.name == "RoundsDataSchemaAlreadySet"
    fed2, _ = deploy_federation(embedded_chain)
    assert fed2.data_schema() == bytes(32)
    with pytest.raises(ContractRevertError) as r:
        fed2.set_data_schema(ours.hash(), sender=embedded_chain.account(3).address)
    assert r.value.name == "RoundsUnauthorized"
    with pytest.raises(ContractRevertError) as r:
        fed2.set_data_schema(bytes(32))
    assert r.value.name == "RoundsDataSchemaAlreadySet"
    assert check_schema(fed2, ours.hash()) is False  # nothing declared: the daemon warns, goes on


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "coordinator.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_node_train_on_an_operators_file_reports_its_own_held_out_split(shop: tuple[Schema, Path]) -> None:
    schema, path = shop
    cfg = path.parent / "peer.toml"
    cfg.write_text('[data]\nsource = "file"\nfile = "shop.csv"\nschema = "schema.toml"\n'
                   'holdout = 0.25\nholdout_seed = 3\n[train]\nepochs = 1\nbatch_size = 16\n')
    proc = _cli("node", "train", "--config", str(cfg), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    # Only the operator's own held-out split: no synthetic "global" set for file data.
    assert set(out["metrics"]) == {"local"}
    expected = holdout(load_with_schema(path, schema), fraction=0.25, seed=3)
    assert out["held_out_examples"] == len(expected.test) and out["examples"] == len(expected.train)
    assert 0 <= out["metrics"]["local"]["accuracy"] <= 1
    human = _cli("node", "train", "--config", str(cfg))
    assert human.returncode == 0 and "held-out split of your own data: accuracy" in human.stdout
    assert "synthetic" not in human.stdout


def test_node_cli_names_file_line_and_column_of_a_bad_row(shop: tuple[Schema, Path]) -> None:
    schema, path = shop
    _rewrite(path, 5, "category", "garden")
    strict = path.parent / "strict.toml"
    strict.write_text(SCHEMA_TOML.replace('unknown = "other"', 'unknown = "error"'))
    (path.parent / "peer.toml").write_text('[data]\nsource = "file"\nfile = "shop.csv"\n'
                                           'schema = "strict.toml"\n')
    col = next(csv.reader(open(path))).index("category") + 1
    for args in (("node", "train", "--config", str(path.parent / "peer.toml")),
                 ("node", "schema", "check", "--schema", str(strict), "--file", str(path))):
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        line = " ".join(proc.stderr.split())
        assert f"shop.csv:5:{col}: column 'category': 'garden' is not one of its declared" in line
    ok = _cli("node", "schema", "check", "--schema", str(path.parent / "schema.toml"), "--file",
              str(path), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["hash"] == "0x" + schema.hash().hex()


def test_examples_convert_real_public_datasets_that_match_their_schemas(tmp_path: Path) -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[1] / "examples"
    mods = {}
    for name in ("digits", "reviews"):
        spec = importlib.util.spec_from_file_location(f"ex_{name}", root / name / "convert.py")
        assert spec and spec.loader
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    digits = load_with_schema(mods["digits"].convert(tmp_path / "d", limit=50),
                              load_schema(root / "digits" / "schema.toml"))
    assert digits.images.shape == (50, 3, 16, 16) and digits.has_image.all()
    assert sorted(set(digits.labels.tolist())) == list(range(10))
    # The schema's normalisation constants fit the data: standardised ink ~ N(0, 1).
    assert abs(float(digits.features[:, 0].mean())) < 0.7
    reviews = load_with_schema(mods["reviews"].convert(tmp_path / "r.csv", limit=200),
                               load_schema(root / "reviews" / "schema.toml"))
    assert len(reviews) == 200 and reviews.has_text.all() and not reviews.has_image.any()
    assert set(reviews.labels.tolist()) == {0, 1}


def test_daemon_learner_reports_held_out_utility_each_round(shop: tuple[Schema, Path]) -> None:
    """What `node run` logs per round: the global model's and the locally
    trained model's utility on the operator's held-out split."""
    from coordinator.privacy._privacy import dp_config
    from nodes._peer import ModelLearner

    schema, path = shop
    data = holdout(load_with_schema(path, schema), fraction=0.25, seed=0)
    model = build_model(config_for_schema(schema))
    learner = ModelLearner(model, data.train, TrainConfig(lr=1e-2), heldout=data.test)
    start = get_flat(model)
    expected = utility(data.test.labels, class_proba(model, data.test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        delta, metrics = learner.update(start, dp_config(config_id=1, q=0.3, sigma=1.0, steps=3),
                                        seed=5)
    assert metrics["heldout_accuracy_global"] == expected["accuracy"]
    assert metrics["heldout_macro_f1_global"] == expected["macro_f1"]
    assert 0 <= metrics["heldout_accuracy_local"] <= 1 and np.abs(delta).sum() > 0
    assert ModelLearner(model, data.train, TrainConfig()).evaluate() == {}
