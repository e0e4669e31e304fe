"""The Beam args of every DirectRunner run say where the workers' packages come from, so TFX
does not build and leave behind an sdist of itself for each Beam component:
`tfx.utils.dependency_utils.make_beam_dependency_flags` returns them unchanged."""
from __future__ import annotations

import pytest
from tfx.utils import dependency_utils

from kubeflow.settings import KubeflowSettings
from schema.config import BEAM_MODES


@pytest.mark.parametrize("mode", sorted(BEAM_MODES))
def test_local_beam_args_need_no_tfx_package(mode):
    args = list(BEAM_MODES[mode])
    assert dependency_utils.make_beam_dependency_flags(args) == args


def test_cluster_direct_runner_args_name_the_image_and_need_no_tfx_package():
    settings = KubeflowSettings(beam_runner="DirectRunner", image="europe-docker.pkg.dev/p/r/categorize@sha256:" + "0" * 64)
    args = settings.beam_pipeline_args()
    assert f"--sdk_container_image={settings.image}" in args
    assert dependency_utils.make_beam_dependency_flags(args) == args
