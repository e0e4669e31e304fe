"""The static review report (evaluator/report.py): the numbers it computes, escaping, no
external resources, and the page as headless Chromium renders it; and the review notebook,
executed headless on a small real TFMA evaluation.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from evaluator import report
from evaluator.report import ExampleResult, Prediction, ReportData, ThresholdFailure, Validation

ROOT = Path(__file__).resolve().parent.parent
EVIL = '<img src=x onerror=alert(1)> "Tee" & <b>co</b>'


def _image(colour) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (120, 80), colour).save(out, format="JPEG")
    return out.getvalue()


def _pred(path, conf, full=None, full_conf=None):
    return Prediction(path, conf, path if full is None else full, conf if full_conf is None else full_conf)


def _examples():
    shirts, tees = "Apparel > Topwear > Shirts", "Apparel > Topwear > Tshirts"
    return [
        ExampleResult("a1", "Oxford shirt", shirts, _pred(shirts, 0.95), _pred(shirts, 0.9)),
        ExampleResult("a2", "Linen shirt", shirts, _pred(shirts, 0.9), _pred(tees, 0.6)),
        # Wrong and confident; has a photo.
        ExampleResult("a3", EVIL, tees, _pred(shirts, 0.85), _pred(tees, 0.7), True, _image((20, 160, 20))),
        # Backed off to the right ancestor: decoded path wrong.
        ExampleResult("a4", "Tee", tees, _pred("Apparel", 0.7, shirts, 0.4), _pred(tees, 0.5)),
        # Abstained; decoded path right.
        ExampleResult("a5", "Sneaker", "Footwear > Shoes", _pred("", 0.0, "Footwear > Shoes", 0.3),
                      _pred("Footwear > Shoes", 0.4)),
        # Wrong at level 1, photo that is not an image.
        ExampleResult("a6", "Sandal", "Footwear > Sandals", _pred("Apparel > Topwear", 0.6, shirts, 0.5),
                      _pred("Footwear > Sandals", 0.5), True, b"not an image"),
        ExampleResult("a7", "no label", "", _pred(shirts, 0.99), _pred(shirts, 0.99)),  # not counted
    ]


def _data(**overrides) -> ReportData:
    metrics = {
        "Overall": {"candidate": {"hierarchical_f1": 0.8123, "coverage": 0.8333, "leaf_accuracy": 0.5,
                                  "accuracy_level_1": 0.8333, "node_precision": float("nan")},
                    "baseline": {"hierarchical_f1": 0.8521, "coverage": 1.0, "leaf_accuracy": 0.4,
                                 "accuracy_level_1": 1.0}},
        f"level_1 = {EVIL}": {"candidate": {"hierarchical_f1": 0.7}, "baseline": {"hierarchical_f1": 0.6}},
        "has_image = 1": {"candidate": {"leaf_accuracy": 0.31}, "baseline": {"leaf_accuracy": 0.52}},
    }
    validation = Validation(ok=False, failures=[
        ThresholdFailure("hierarchical_f1", "Overall", -0.0398, "change", absolute=0.0),
        ThresholdFailure("coverage", "Overall", -0.1667, "change", absolute=-0.01),
        ThresholdFailure("leaf_accuracy", "has_image = 1", 0.31, "value", lower=0.5),
        ThresholdFailure("hierarchical_f1", f"level_1 = {EVIL}", 0.1, "value", lower=0.5, message=EVIL),
    ])
    values = dict(metrics=metrics, validation=validation, examples=_examples(), blessed=False,
                  title=f"Run {EVIL}", context={"model": "/tmp/m <1>"}, generated="2024-01-01 00:00 UTC",
                  descriptions={"hierarchical_f1": "harmonic mean of hP and hR", "coverage": "share covered"})
    values.update(overrides)
    return ReportData(**values)


# ---------------------------------------------------------------------------- numbers


def test_curve_sweeps_thresholds_with_ties():
    points = report.coverage_precision_curve([0.9, 0.8, 0.8, 0.2], [True, True, False, True])
    assert [(p.threshold, p.coverage, round(p.precision, 4)) for p in points] == [
        (0.9, 0.25, 1.0), (0.8, 0.75, 0.6667), (0.2, 1.0, 0.75)]
    many = report.coverage_precision_curve([i / 1000 for i in range(1000)], [i % 2 == 0 for i in range(1000)],
                                           max_points=50)
    assert len(many) <= 50 and many[0].coverage == 0.001 and many[-1].coverage == 1.0
    assert report.coverage_precision_curve([], []) == []


def test_operating_point_uses_the_thresholded_path():
    rows = [(e.candidate, e.true_path) for e in report.labelled(_examples())]
    op = report.operating_point(rows)
    # 6 labelled; a5 abstains -> 5 covered; node-correct: a1, a2, a4 (ancestor) -> 3/5; exact: a1, a2.
    assert (op.n, op.coverage, op.node_precision, op.exact_precision) == (6, 5 / 6, 0.6, 0.4)


def test_confusions_count_each_product_at_its_first_wrong_level():
    confusions = report.confusions_per_level(_examples())
    assert confusions[1] == [("Footwear", "Apparel", 1)]  # a6, not counted again at level 2
    assert confusions[3] == [("Apparel > Topwear > Tshirts", "Apparel > Topwear > Shirts", 2)]  # a3, a4
    assert 2 not in confusions
    assert report.confusions_per_level(_examples(), model="baseline")[3] == [
        ("Apparel > Topwear > Shirts", "Apparel > Topwear > Tshirts", 1)]


def test_error_sample_wrong_first_then_backed_off():
    chosen = report.select_errors(report.labelled(_examples()), 10)
    assert [e.id for e in chosen] == ["a3", "a6", "a4"]
    assert [report.error_kind(e) for e in chosen] == ["wrong", "wrong", "backed off"]
    assert [e.id for e in report.select_errors(_examples(), 1)] == ["a3"]


def test_failures_spelled_out():
    f = ThresholdFailure("coverage", "Overall", -0.1667, "change", absolute=-0.01)
    assert report.describe_failure(f) == ("coverage on slice Overall: candidate \u2212 baseline = \u22120.1667, "
                                          "must be \u2265 -0.01 (absolute) (change threshold, higher is better)")
    f = ThresholdFailure("leaf_accuracy", "level_1 = Footwear", 0.25, "value", lower=0.3, upper=0.99)
    assert report.describe_failure(f) == ("leaf_accuracy on slice level_1 = Footwear: candidate = 0.2500, "
                                          "must be \u2265 0.3 and \u2264 0.99 (value threshold)")


# ---------------------------------------------------------------------------- page


def test_page_content_and_escaping():
    page = report.render_report(_data())
    assert page.startswith("<!DOCTYPE html>")
    assert 'id="verdict">NOT BLESSED<' in page
    assert "Validation failed: 4 threshold(s) not met." in page
    # Candidate, baseline and difference side by side; regressions marked, the failed change outlined.
    assert re.search(r'data-metric="hierarchical_f1"><td>hierarchical_f1 \u2717</td><td class="num">0\.8123</td>'
                     r'<td class="num">0\.8521</td><td class="num regression failed">\u22120\.0398</td>', page)
    assert re.search(r'data-metric="leaf_accuracy"><td>leaf_accuracy</td><td class="num">0\.5000</td>'
                     r'<td class="num">0\.4000</td><td class="num improvement">\+0\.1000</td>', page)
    assert re.search(r'data-metric="node_precision">.*?n/a', page)  # NaN
    assert re.search(r'<tr data-slice="has_image = 1"><td>has_image = 1</td><td class="num">n/a</td>'
                     r'<td class="num failed">0\.3100</td>'
                     r'<td class="num">0\.5200</td><td class="num regression">\u22120\.2100</td>', page)
    # Nothing a merchant or a slice value writes gets through unescaped.
    assert "<img src=x" not in page and "<b>co</b>" not in page and "onerror=alert(1)>" not in page
    escaped = html_escape(EVIL)
    assert f"<title>Run {escaped}</title>" in page
    assert f"level_1 = {escaped}" in page and f"<br>{escaped}</td>" in page  # slice; error sample
    assert "/tmp/m &lt;1&gt;" in page
    # Thumbnail only for the product with a readable photo; the other says so.
    assert page.count('<img class="thumb" src="data:image/jpeg;base64,') == 1
    assert "unreadable image" in page
    # Operating point and curve.
    assert re.search(r'<tr data-model="candidate"><td>candidate</td><td class="num">6</td>'
                     r'<td class="num">0\.8333</td><td class="num">0\.6000</td><td class="num">0\.4000</td>', page)
    assert page.count('class="curve"') == 4 and page.count('class="operating-point"') == 2


def test_intervals_counts_and_gate_reasons_are_shown():
    from evaluator.stats import Interval

    slice_ = "level_1 = Shoes"
    metrics = {"Overall": {"candidate": {"leaf_accuracy": 0.9, "example_count": 500.0},
                           "baseline": {"leaf_accuracy": 0.8, "example_count": 500.0}},
               slice_: {"candidate": {"leaf_accuracy": 0.4, "example_count": 50.0},
                        "baseline": {"leaf_accuracy": 1.0, "example_count": 50.0}}}
    intervals = {"Overall": {"candidate": {"leaf_accuracy": Interval(0.9, 0.871, 0.925)},
                             "baseline": {"leaf_accuracy": Interval(0.8, 0.762, 0.834)},
                             "difference": {"leaf_accuracy": Interval(0.1, 0.07, 0.13)}},
                 slice_: {"candidate": {"leaf_accuracy": Interval(0.4, 0.264, 0.548),
                                        "example_count": Interval(50, 50, 50)},
                          "baseline": {"leaf_accuracy": Interval(1.0, 0.929, 1.0)},
                          "difference": {"leaf_accuracy": Interval(-0.6, -0.74, -0.45)}}}
    failure = ThresholdFailure("gate_slice_leaf_accuracy", slice_, -0.45, "value", lower=0.0)
    page = report.render_report(_data(metrics=metrics, intervals=intervals, tensorboard="/runs/model_run/7",
                                      validation=Validation(ok=False, failures=[failure])))
    assert re.search(r'<tr data-slice="level_1 = Shoes"><td>level_1 = Shoes</td><td class="num">50</td>'
                     r'<td class="num">0\.4000 <span class="ci">\[0\.264, 0\.548\]</span></td>', page)
    assert '\u22120.6000 <span class="ci">[-0.740, -0.450]</span>' in page  # the paired difference
    assert ("significant leaf accuracy loss beyond the tolerance on level_1 = Shoes: 0.400 [0.264, 0.548] vs "
            "baseline 1.000 [0.929, 1.000], difference -0.600 [-0.740, -0.450], 50 products") in page
    assert 'id="gate-rule"' in page
    assert '<a href="file:///runs/model_run/7">' in page and "tensorboard --logdir /runs/model_run/7" in page


def test_page_needs_no_network_and_no_script():
    page = report.render_report(_data(tensorboard="/runs/model_run/7"))
    assert "<script" not in page.lower()
    for attribute in re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', page):
        assert attribute.startswith(("data:", "#", "file://")), attribute
    assert "url(" not in page and "@import" not in page and "http://" not in page and "https://" not in page


def test_page_without_baseline_or_examples():
    metrics = {"Overall": {"candidate": {"hierarchical_f1": 0.9}}}
    page = report.render_report(_data(metrics=metrics, examples=[], validation=Validation(ok=True, rubber_stamp=True),
                                      blessed=True))
    assert 'id="verdict">BLESSED<' in page and "candidate only" in page and "rubber stamp" in page
    assert "<th>baseline</th>" not in page and "No labelled products" in page
    page = report.render_report(_data(metrics={}, validation=Validation(ok=None), blessed=None))
    assert "NO VERDICT" in page and "No metrics were found" in page


def html_escape(text: str, quote: bool = True) -> str:
    """As the page escapes text: Jinja2's autoescape (markupsafe) in elements and attributes;
    `quote=False`: as a DOM serialiser writes text (only <, > and &)."""
    import html

    import markupsafe

    return str(markupsafe.escape(text)) if quote else html.escape(text, quote=False)


# ---------------------------------------------------------------------------- Chromium

# Test-only probe appended to a copy of the page (the report itself has no script): says
# whether every thumbnail decoded and whether the chart's curves have a size.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img.thumb'));
  var decoded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var curves = document.querySelectorAll('svg polyline.curve');
  var widest = 0;
  for (var k = 0; k < curves.length; k++) { widest = Math.max(widest, curves[k].getBBox().width); }
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = 'images ' + decoded + '/' + imgs.length +
      ' curves ' + curves.length + ' width ' + Math.round(widest);
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI installs it in .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def _run_chromium(binary: str, url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args, url],
            capture_output=True, text=True, timeout=90,
        )


def _console_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_chromium_renders_the_report(tmp_path):
    binary = _chromium()
    page = report.render_report(_data())
    (tmp_path / "index.html").write_text(page, encoding="utf-8")
    probed = page.replace("</body>", PROBE + "</body>")
    (tmp_path / "probed.html").write_text(probed, encoding="utf-8")

    dom = _run_chromium(binary, (tmp_path / "probed.html").as_uri(), "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_lines(dom.stderr) == []
    text = dom.stdout
    assert '<pre id="probe">images 1/1 curves 4 width ' in text
    width = int(re.search(r"curves 4 width (\d+)", text).group(1))
    assert width > 100  # coverage spans most of the x axis
    assert "NOT BLESSED" in text
    for value in ("0.8123", "0.8521", "\u22120.0398", "0.3100", "0.5200", "\u22120.2100", "+0.1000"):
        assert value in text, value
    assert "leaf_accuracy on slice has_image = 1: candidate = 0.3100, must be \u2265 0.5 (value threshold)" in text
    # Still text after parsing (the DOM serialiser escapes <, > and & in text), not elements.
    assert f"{html_escape(EVIL, quote=False)}</td>" in text
    assert '<img src="x"' not in text and 'onerror="' not in text and "<b>co</b>" not in text

    # The page as it is (no probe): no console message at all, and it paints.
    shot = tmp_path / "shot.png"
    run = _run_chromium(binary, (tmp_path / "index.html").as_uri(), f"--screenshot={shot}",
                        "--window-size=1200,900", "--hide-scrollbars")
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console_lines(run.stderr) == []
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    red = sum(count for count, (r, g, b) in colours if r > 180 and g < 70 and b < 80)
    assert red > 500, "the NOT BLESSED badge is not painted"


# ---------------------------------------------------------------------------- notebook


# The notebook's results, dumped by a cell the test appends to its copy.
DUMP_CELL = """import json
print("DUMP " + json.dumps({
    "models": model_names,
    "slicing": slicing_view.reset_index().to_dict(orient="records"),
    "counts": counts,
    "leaf_accuracy": {s: {w: comparison.loc[(s, "leaf_accuracy"), w] for w in ("candidate", "baseline", "difference")}
                      for s in counts},
    "validation_ok": bool(validation.validation_ok),
    "failures": explain_failures(read_validation(EVAL_URI).failures, intervals),
    "page": page,
    "pivot_columns": [str(c) for c in metrics_df.columns],
}, default=str))"""


def test_notebook_runs_on_a_real_evaluation(tmp_path, monkeypatch):
    """evaluator/review.ipynb executed headless (nbclient, a fresh kernel) against a real
    TFMA evaluation of 40 products built here (the pipeline's EvalConfig, predictions as
    features) and a report page: every cell runs, and what it shows is what was evaluated.
    Candidate and baseline are right on the same products, so the gate finds no win."""
    import nbformat
    from nbclient import NotebookClient

    from tests.fixtures.evaluation import evaluate_from_features, path_example

    top, bottom, shoes = "Apparel > Topwear", "Apparel > Bottomwear", "Footwear > Shoes"
    records = [path_example(top, "Apparel", p, p) for p in [top] * 24 + [bottom] * 6]
    records += [path_example(shoes, "Footwear", p, p) for p in [shoes] * 9 + [top]]
    eval_uri = evaluate_from_features(tmp_path / "evaluation", records, depth=2)
    report_uri = tmp_path / "report"
    report_uri.mkdir()
    (report_uri / "index.html").write_text(report.render_report(_data()), encoding="utf-8")

    path = ROOT / "evaluator" / "review.ipynb"
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), \
        "commit the notebook without outputs"
    notebook.cells.append(nbformat.v4.new_code_cell(DUMP_CELL))
    monkeypatch.setenv("EVAL_URI", eval_uri)  # the kernel inherits them
    monkeypatch.setenv("REPORT_URI", str(report_uri))
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    dump = next(line for o in outputs for line in str(o.get("text", "")).splitlines() if line.startswith("DUMP "))
    got = json.loads(dump[len("DUMP "):])

    assert got["models"] == ["baseline", "candidate"]
    slicing = {row["slice"]: row for row in got["slicing"]}
    assert {"Overall", "level_1 = Apparel", "level_1 = Footwear"} <= set(slicing)
    assert slicing["Overall"]["example_count"] == 40
    assert slicing["level_1 = Apparel"]["leaf_accuracy"] == pytest.approx(24 / 30)
    assert slicing["level_1 = Footwear"]["leaf_accuracy"] == pytest.approx(9 / 10)
    assert got["counts"]["Overall"] == 40 and got["counts"]["level_1 = Apparel"] == 30
    overall = got["leaf_accuracy"]["Overall"]
    assert overall["candidate"].startswith("0.825 [") and overall["baseline"].startswith("0.825 [")
    assert overall["difference"].startswith("0.000 [")
    assert any("leaf_accuracy" in c for c in got["pivot_columns"])
    assert got["validation_ok"] is False
    assert any(line.startswith("no significant win on Overall: leaf accuracy 0.825 [") for line in got["failures"])
    # The report page shown as it was written, inside an iframe's srcdoc (escaped).
    assert got["page"] == (report_uri / "index.html").read_text(encoding="utf-8")
    shown = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any(h.startswith('<iframe srcdoc="<!DOCTYPE html>') or 'srcdoc="&lt;!DOCTYPE html&gt;' in h
               for h in shown)
