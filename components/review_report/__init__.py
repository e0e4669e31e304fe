"""ReviewReport: a static, self-contained HTML review report of one pipeline run."""
