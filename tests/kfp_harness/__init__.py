"""A test harness that plays the Vertex AI / Kubeflow Pipelines launcher (tests only).

`launcher.Launcher` runs every task of a compiled pipeline spec in dependency order
through TFX's own container entrypoints, handing each the ExecutorInput the backend would
send; `local_vertex_jobs` answers the Trainer's Vertex AI CustomJob by running its worker
pools as local processes with the environment Vertex AI sets. Never a product runner.
"""
