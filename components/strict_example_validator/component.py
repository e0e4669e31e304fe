"""StrictExampleValidator: the standard ExampleValidator whose run fails on anomalies."""
from tfx.components import ExampleValidator
from tfx.dsl.components.base import executor_spec

from components.strict_example_validator import executor


class StrictExampleValidator(ExampleValidator):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
