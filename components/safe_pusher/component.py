"""SafePusher: the standard Pusher with an infra check, an atomic versioned push and a model card.

Built from the standard Pusher's own constructor (so its checks and every option keep
working: `infra_blessing`, `custom_config`, the push destination's versioning), then
re-specified (schema/compat.py) with two optional inputs and one parameter added:

- `examples` (Examples): the eval split gives the infra check's smoke rows;
- `evaluation` (ModelEvaluation): the metrics written into the model card;
- `smoke_rows` (int, default 32): how many eval examples the serving signature is run on;
- `keep_versions` (int, default 3): complete versions kept in the serving folder.

Output: `pushed_model` (PushedModel), as the standard Pusher's.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.channel import BaseChannel
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.safe_pusher import executor
from schema import compat, serving_layout


class SafePusherSpec(standard_component_specs.PusherSpec):
    PARAMETERS = {
        **standard_component_specs.PusherSpec.PARAMETERS,
        executor.SMOKE_ROWS_KEY: ExecutionParameter(type=int, optional=True),
        executor.KEEP_VERSIONS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
        executor.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
    }


class SafePusher(Pusher):
    SPEC_CLASS = SafePusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: Optional[BaseChannel] = None,
        model_blessing: Optional[BaseChannel] = None,
        push_destination: Optional[Union[pusher_pb2.PushDestination, data_types.RuntimeParameter]] = None,
        examples: Optional[BaseChannel] = None,
        evaluation: Optional[BaseChannel] = None,
        smoke_rows: int = executor.DEFAULT_SMOKE_ROWS,
        keep_versions: int = serving_layout.DEFAULT_KEEP_VERSIONS,
        *,
        infra_blessing: Optional[BaseChannel] = None,
        custom_config: Optional[Dict[str, Any]] = None,
    ):
        if push_destination is None:
            raise ValueError("SafePusher needs a push_destination (a filesystem base directory)")
        plain = Pusher(model=model, model_blessing=model_blessing, infra_blessing=infra_blessing,
                       push_destination=push_destination, custom_config=custom_config)
        spec = compat.respecified(plain, SafePusherSpec, {
            executor.EXAMPLES_KEY: examples,
            executor.EVALUATION_KEY: evaluation,
            executor.SMOKE_ROWS_KEY: smoke_rows,
            executor.KEEP_VERSIONS_KEY: keep_versions,
        })
        compat.init_with_spec(self, Pusher, spec)
