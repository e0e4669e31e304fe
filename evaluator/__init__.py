"""TFMA metrics, the eval config with its thresholds, and review reports."""
