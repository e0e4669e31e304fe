"""ReviewReport: the component's inputs, parameters and output."""
from tfx.types import channel_utils, standard_artifacts

from components.artifacts import ReviewReportArtifact
from components.review_report.component import ReviewReport


def _channel(artifact_type):
    return channel_utils.as_channel([artifact_type()])


def test_spec():
    component = ReviewReport(
        examples=_channel(standard_artifacts.Examples),
        model=_channel(standard_artifacts.Model),
        evaluation=_channel(standard_artifacts.ModelEvaluation),
        blessing=_channel(standard_artifacts.ModelBlessing),
        baseline_model=_channel(standard_artifacts.Model),
        max_errors=20,
    )
    assert set(component.inputs) == {"examples", "model", "baseline_model", "evaluation", "blessing"}
    assert component.outputs["report"].type is ReviewReportArtifact
    assert ReviewReportArtifact.TYPE_NAME == "ReviewReport"
    assert component.exec_properties == {"max_errors": 20, "split": "eval"}


def test_baseline_is_optional():
    component = ReviewReport(
        examples=_channel(standard_artifacts.Examples),
        model=_channel(standard_artifacts.Model),
        evaluation=_channel(standard_artifacts.ModelEvaluation),
        blessing=_channel(standard_artifacts.ModelBlessing),
    )
    assert "baseline_model" not in component.inputs
    assert component.exec_properties["split"] == "eval"
