"""BaselineSelector: picks the baseline the Evaluator compares the candidate against."""
from __future__ import annotations

from typing import Optional

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import BaseChannel, Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.baseline_selector import executor


class BaselineSelectorSpec(ComponentSpec):
    PARAMETERS = {executor.PUSHED_MODELS_DIR_KEY: ExecutionParameter(type=str, optional=True)}
    INPUTS = {
        executor.FALLBACK_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.BLESSED_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {executor.BASELINE_KEY: ChannelParameter(type=standard_artifacts.Model)}


class BaselineSelector(base_component.BaseComponent):
    SPEC_CLASS = BaselineSelectorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, fallback_model: BaseChannel, blessed_model: Optional[BaseChannel] = None,
                 pushed_models_dir: Optional[str] = None):
        """`blessed_model`: the resolver's latest blessed model; `pushed_models_dir`: where
        the newest pushed version is looked up instead (open-source KFP runs no resolver)."""
        super().__init__(spec=BaselineSelectorSpec(
            fallback_model=fallback_model,
            blessed_model=blessed_model,
            pushed_models_dir=pushed_models_dir,
            baseline=Channel(type=standard_artifacts.Model),
        ))
