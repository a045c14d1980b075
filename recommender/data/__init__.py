"""KnowLedger's data layer: the declared schema, the validating loader and (in :mod:`.demo`) a synthetic
world with known ground truth. The demo module is imported explicitly because it pulls in scikit-learn."""

from recommender.data.dataset import DatasetError, KnowledgeDataset
from recommender.data.loader import load_dataset, save_dataset, validate_dataset
from recommender.data.schema import SCHEMA, TABLE_NAMES, ColumnSpec, TableSpec

__all__ = [
    "SCHEMA",
    "TABLE_NAMES",
    "ColumnSpec",
    "DatasetError",
    "KnowledgeDataset",
    "TableSpec",
    "load_dataset",
    "save_dataset",
    "validate_dataset",
]
