"""ReviewReport executor on real files: a small fake serving model (same signature and
outputs as the trained one, predicting from the title), a gzipped eval split, and TFMA
output files written as the Evaluator writes them (MetricsForSlice and ValidationResult
records), so `tfma.load_metrics` / `tfma.load_validation_result` read them for real."""
import base64
import html
import io
import json
import os
import re

import markupsafe
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.artifacts import ReviewReportArtifact
from components.review_report import executor as rr
from evaluator import report

SEP = " > "


def _png(colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, format="PNG")
    return out.getvalue()


# (title regex, decoded path, decoded confidence, returned path, returned confidence)
CANDIDATE_RULES = [
    (".*shirt.*", "Apparel > Topwear > Shirts", 0.9, "Apparel > Topwear > Shirts", 0.9),
    (".*shoe.*", "Footwear > Shoes > Sneakers", 0.8, "Footwear > Shoes > Sneakers", 0.8),
    (".*watch.*", "Accessories > Bags > Handbags", 0.7, "Accessories > Bags > Handbags", 0.7),
]
CANDIDATE_DEFAULT = ("Apparel > Topwear > Tshirts", 0.3, "Apparel", 0.6)  # backed off to level 1
BASELINE_DEFAULT = ("Apparel > Topwear > Tshirts", 0.5, "Apparel > Topwear > Tshirts", 0.5)


class FakeServing(tf.Module):
    """The serving contract (schema/features.py) with rules on the title instead of a model."""

    def __init__(self, rules, default, depth=3):
        super().__init__()
        self._rules, self._default, self._depth = rules, default, depth

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        title = tf.io.parse_example(examples, {"title": tf.io.FixedLenFeature([], tf.string, default_value="")})
        title = tf.strings.lower(title["title"])

        def outputs(full, full_conf, path, conf):
            levels = full.split(SEP)
            out = {"full_path": full, "full_confidence": full_conf, "full_depth": len(levels),
                   "category_path": path, "confidence": conf, "depth": len(path.split(SEP)) if path else 0}
            for k in range(1, self._depth + 1):
                out[f"level_{k}_class"] = SEP.join(levels[:k]) if k <= len(levels) else ""
                out[f"level_{k}_confidence"] = full_conf if k <= len(levels) else 0.0
            return out

        result = {k: tf.fill(tf.shape(title), v) for k, v in outputs(*self._default).items()}
        for pattern, *values in self._rules:
            hit = tf.strings.regex_full_match(title, pattern)
            for k, v in outputs(*values).items():
                result[k] = tf.where(hit, tf.fill(tf.shape(title), v), result[k])
        return {k: tf.cast(v, tf.float32) if v.dtype == tf.float64 else v for k, v in result.items()}


def _save_model(path, rules, default):
    module = FakeServing(rules, default)
    tf.saved_model.save(module, os.path.join(path, "Format-Serving"), signatures={"serving_default": module.serve})


def _example(id_, title, true_path, image=b""):
    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v if isinstance(v, bytes) else v.encode()]))

    feats = {"id": b(id_), "title": b(title), "description": b("d"), "image": b(image),
             "has_image": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(bool(image))])),
             "category_path": b(true_path), "gender": b("Men")}
    for k, level in enumerate(true_path.split(SEP), start=1):
        feats[f"level_{k}"] = b(level)
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


EVIL_TITLE = '<script>alert("x")</script> & Tee'
EXAMPLES = [
    ("p1", "Blue shirt", "Apparel > Topwear > Shirts", _png((0, 0, 200))),  # right
    ("p2", "Red shoe", "Footwear > Shoes > Sneakers", b""),  # right
    ("p3", "Gold watch", "Accessories > Watches > Watches", _png()),  # wrong at level 2, confident
    ("p4", "Plain tee", "Apparel > Topwear > Tshirts", b""),  # backed off, decoded right: no error
    ("p5", EVIL_TITLE, "Apparel > Topwear > Tops", _png((0, 120, 0))),  # backed off, decoded wrong
    ("p6", "Office shirt", "Apparel > Topwear > Tshirts", b""),  # wrong, confident
]


def _write_split(split_dir):
    os.makedirs(split_dir)
    with tf.io.TFRecordWriter(os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz"), options="GZIP") as w:
        for row in EXAMPLES:
            w.write(_example(*row))


def _write_evaluation(uri):
    """What the Evaluator writes: one MetricsForSlice per slice and a ValidationResult."""
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2, validation_result_pb2
    import tensorflow_model_analysis as tfma

    os.makedirs(uri)
    values = {
        (): {"candidate": {"hierarchical_f1": 0.8125, "coverage": 0.6667, "leaf_accuracy": 0.5},
             "baseline": {"hierarchical_f1": 0.9375, "coverage": 1.0, "leaf_accuracy": 0.5}},
        (("level_1", b"Apparel"),): {"candidate": {"hierarchical_f1": 0.75}, "baseline": {"hierarchical_f1": 0.7}},
        (("has_image", 1),): {"candidate": {"hierarchical_f1": 0.61}, "baseline": {"hierarchical_f1": 0.62}},
    }
    with tf.io.TFRecordWriter(os.path.join(uri, "metrics-00000-of-00001.tfrecord")) as w:
        for slice_key, by_model in values.items():
            record = metrics_for_slice_pb2.MetricsForSlice()
            for column, value in slice_key:
                single = record.slice_key.single_slice_keys.add(column=column)
                if isinstance(value, bytes):
                    single.bytes_value = value
                else:
                    single.int64_value = value
            for model, metrics in by_model.items():
                for name, value in metrics.items():
                    kv = record.metric_keys_and_values.add()
                    kv.key.name, kv.key.model_name = name, model
                    kv.value.double_value.value = value
            diff = record.metric_keys_and_values.add()  # TFMA also stores diffs: skipped
            diff.key.name, diff.key.model_name, diff.key.is_diff = "hierarchical_f1", "candidate", True
            diff.value.double_value.value = -123.0
            w.write(record.SerializeToString())
    result = validation_result_pb2.ValidationResult(validation_ok=False)
    per_slice = result.metric_validations_per_slice.add()
    failure = per_slice.failures.add()
    failure.metric_key.name, failure.metric_key.model_name = "hierarchical_f1", "candidate"
    failure.metric_key.is_diff = True
    failure.metric_threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
    failure.metric_threshold.change_threshold.absolute.value = 0.0
    failure.metric_value.double_value.value = -0.125
    per_slice = result.metric_validations_per_slice.add()
    per_slice.slice_key.single_slice_keys.add(column="level_1", bytes_value=b"Apparel")
    failure = per_slice.failures.add()
    failure.metric_key.name, failure.metric_key.model_name = "leaf_accuracy", "candidate"
    failure.metric_threshold.value_threshold.lower_bound.value = 0.3
    failure.metric_value.double_value.value = 0.25
    with tf.io.TFRecordWriter(os.path.join(uri, "validations.tfrecord")) as w:
        w.write(result.SerializeToString())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("review_report")
    _save_model(str(root / "candidate"), CANDIDATE_RULES, CANDIDATE_DEFAULT)
    _save_model(str(root / "baseline"), [], BASELINE_DEFAULT)
    _write_split(str(root / "examples" / "Split-eval"))
    _write_evaluation(str(root / "evaluation"))
    os.makedirs(root / "blessing")
    (root / "blessing" / "NOT_BLESSED").write_text("")
    return root


def _artifacts(root, with_baseline=True):
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = json.dumps(["eval"])
    model, baseline = standard_artifacts.Model(), standard_artifacts.Model()
    model.uri, baseline.uri = str(root / "candidate"), str(root / "baseline")
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(root / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(root / "blessing")
    blessing.set_int_custom_property("blessed", 0)
    inputs = {"examples": [examples], "model": [model], "evaluation": [evaluation], "blessing": [blessing]}
    if with_baseline:
        inputs["baseline_model"] = [baseline]
    return inputs


def test_read_metrics_and_validation_from_tfma_files(run_dir):
    metrics = rr.read_metrics(str(run_dir / "evaluation"))
    assert metrics["Overall"]["candidate"]["hierarchical_f1"] == pytest.approx(0.8125)
    assert metrics["Overall"]["baseline"]["coverage"] == pytest.approx(1.0)
    assert metrics["level_1 = Apparel"]["baseline"]["hierarchical_f1"] == pytest.approx(0.7)
    assert metrics["has_image = 1"]["candidate"]["hierarchical_f1"] == pytest.approx(0.61)
    assert -123.0 not in metrics["Overall"]["candidate"].values()  # diff keys skipped
    validation = rr.read_validation(str(run_dir / "evaluation"))
    assert validation.ok is False and len(validation.failures) == 2
    change, value = validation.failures
    assert (change.metric, change.slice, change.kind, change.absolute, change.value) == (
        "hierarchical_f1", "Overall", "change", 0.0, -0.125)
    assert (value.metric, value.slice, value.kind, value.lower, value.value) == (
        "leaf_accuracy", "level_1 = Apparel", "value", 0.3, 0.25)
    assert rr.read_validation(str(run_dir / "examples")).ok is None  # no validations file


def test_serving_fn_reads_the_contract(run_dir):
    predict = rr.load_serving_fn(str(run_dir / "candidate"))
    out = predict([_example("a", "Nice shirt", "x"), _example("b", "thing", "y")])
    assert out[0] == report.Prediction("Apparel > Topwear > Shirts", pytest.approx(0.9),
                                       "Apparel > Topwear > Shirts", pytest.approx(0.9))
    assert out[1].path == "Apparel" and out[1].full_path == "Apparel > Topwear > Tshirts"


def test_executor_writes_the_report(run_dir, tmp_path):
    output = ReviewReportArtifact()
    output.uri = str(tmp_path / "report")
    rr.Executor().Do(_artifacts(run_dir), {"report": [output]}, {"max_errors": 10, "split": "eval"})
    path = output.get_string_custom_property("report_path")
    assert path == os.path.join(output.uri, "index.html")
    assert output.get_int_custom_property("products") == 6
    assert output.get_int_custom_property("blessed") == 0
    page = open(path, encoding="utf-8").read()

    assert 'id="verdict">NOT BLESSED<' in page
    # Each failing threshold spelled out: metric, slice, value, bound.
    assert ("hierarchical_f1 on slice Overall: candidate \u2212 baseline = \u22120.1250, must be \u2265 0 "
            "(absolute) (change threshold, higher is better)") in page
    assert "leaf_accuracy on slice level_1 = Apparel: candidate = 0.2500, must be \u2265 0.3 (value threshold)" in page
    # Metrics side by side; the regression on hF1 (0.8125 vs 0.9375) is highlighted.
    assert re.search(r'data-metric="hierarchical_f1".*?0\.8125.*?0\.9375.*?class="num regression failed">'
                     r'\u22120\.1250<', page, re.S)
    assert re.search(r'data-slice="has_image = 1">.*?0\.6100.*?0\.6200.*?regression', page, re.S)
    assert re.search(r'data-slice="level_1 = Apparel">.*?0\.7500.*?0\.7000.*?improvement.*?\+0\.0500', page, re.S)
    ops = re.search(r'<tr data-model="candidate">(.*?)</tr>', page, re.S).group(1)
    # All 6 get a path; node-correct: p1, p2, p4 ("Apparel"), p5 ("Apparel") -> 4/6; exact: p1, p2 -> 2/6.
    assert re.findall(r'class="num">([^<]*)<', ops)[:4] == ["6", "1.0000", "0.6667", "0.3333"]
    base_ops = re.search(r'<tr data-model="baseline">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r'class="num">([^<]*)<', base_ops)[:4] == ["6", "1.0000", "0.3333", "0.3333"]
    assert page.count('class="curve"') == 4 and page.count('class="operating-point"') == 2
    # Confusions: p3 at level 2, p6 at level 3 (p5 too: Tops -> Tshirts).
    assert re.search(r"<td>Accessories &gt; Watches</td><td>Accessories &gt; Bags</td><td[^>]*>1<", page)
    assert re.search(r"<td>Apparel &gt; Topwear &gt; Tshirts</td><td>Apparel &gt; Topwear &gt; Shirts</td>"
                     r"<td[^>]*>1<", page)
    # Errors: the two wrong paths first (most confident first), then the backed-off ones.
    ids = re.findall(r'<tr data-id="([^"]+)">', page)
    assert ids == ["p6", "p3", "p5"]
    # Thumbnails embedded (p3 and p5 have images), merchant text escaped everywhere.
    thumbs = re.findall(r'<img class="thumb" src="data:image/jpeg;base64,([^"]+)" alt="([^"]*)"', page)
    assert [alt for _, alt in thumbs][0] == "Gold watch"
    assert "<" not in thumbs[1][1] and html.unescape(thumbs[1][1]) == EVIL_TITLE  # escaped, and whole
    from PIL import Image

    assert Image.open(io.BytesIO(base64.b64decode(thumbs[1][0]))).getpixel((5, 5))[1] > 100  # the green one
    assert "<script>" not in page
    assert f"{markupsafe.escape(EVIL_TITLE)}</td>" in page
    assert "no image" in page  # p6


def test_executor_without_baseline_and_few_errors(run_dir, tmp_path):
    output = ReviewReportArtifact()
    output.uri = str(tmp_path / "report")
    rr.Executor().Do(_artifacts(run_dir, with_baseline=False), {"report": [output]}, {"max_errors": 1})
    page = open(output.get_string_custom_property("report_path"), encoding="utf-8").read()
    assert re.findall(r'<tr data-id="([^"]+)">', page) == ["p6"]
    assert 'data-model="baseline"' not in page
    assert "baseline path" not in page
