"""Artifact types the custom components add to ML Metadata."""
from tfx.types.artifact import Artifact


class RejectedRecords(Artifact):
    """Catalog rows the ingest could not use (rejected.csv) and row warnings (warnings.csv),
    each with its row number and reason, plus counts.json."""

    TYPE_NAME = "RejectedRecords"


class CategoryTaxonomy(Artifact):
    """taxonomy.json: the tree of category paths built from the training split."""

    TYPE_NAME = "CategoryTaxonomy"


class WordMapperArtifact(Artifact):
    """word_mapper.npz: the train split's title words with their sentence-encoder vectors
    and the threshold (schema/encoders/word_mapper.py), fitted by the Embedder and
    exported with the model."""

    TYPE_NAME = "WordMapper"


class ReviewReportArtifact(Artifact):
    """index.html: the static, self-contained review report of one run (verdict, metrics
    per slice against the baseline, coverage-precision curve, confusions, error sample)."""

    TYPE_NAME = "ReviewReport"
