"""ReviewReport: the static HTML review report of one run (evaluator/report.py renders it)."""
from __future__ import annotations

from typing import Optional

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import BaseChannel, Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import ReviewReportArtifact
from components.review_report import executor


class ReviewReportSpec(ComponentSpec):
    PARAMETERS = {
        executor.MAX_ERRORS_KEY: ExecutionParameter(type=int, optional=True),
        executor.SPLIT_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
        executor.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        executor.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
    OUTPUTS = {executor.REPORT_KEY: ChannelParameter(type=ReviewReportArtifact)}


class ReviewReport(base_component.BaseComponent):
    """Writes `<report.uri>/index.html` and sets the custom property `report_path`.

    `examples` are the raw examples (CatalogExampleGen's), read from `split`; `model` and
    the optional `baseline_model` are run on them through their serving signature;
    `evaluation` and `blessing` are the Evaluator's outputs for the same models.
    """

    SPEC_CLASS = ReviewReportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: BaseChannel,
        model: BaseChannel,
        evaluation: BaseChannel,
        blessing: BaseChannel,
        baseline_model: Optional[BaseChannel] = None,
        max_errors: Optional[int] = None,
        split: str = "eval",
    ):
        super().__init__(
            spec=ReviewReportSpec(
                examples=examples,
                model=model,
                baseline_model=baseline_model,
                evaluation=evaluation,
                blessing=blessing,
                max_errors=max_errors,
                split=split,
                report=Channel(type=ReviewReportArtifact),
            )
        )
