"""lsrec_hf: a pretrained-transformer sequential recommender on the Hugging Face stack."""

from importlib import metadata as _metadata

from transformers import AutoConfig, AutoModel

from .processing.catalog import ItemCatalog
from .model.configuration_lsrec import LSRecConfig
from .model.modeling_lsrec import LSRecForSequentialRecommendation, LSRecMemory, LSRecModel
from .inference.pipeline_recommendation import RecommendationPipeline  # registers the "recommendation" pipeline task

try:  # the installed distribution's version: one number, in pyproject.toml
    __version__ = _metadata.version("lsrec_hf")
except _metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

AutoConfig.register("lsrec", LSRecConfig)
AutoModel.register(LSRecConfig, LSRecForSequentialRecommendation)

__all__ = ["ItemCatalog", "LSRecConfig", "LSRecModel", "LSRecForSequentialRecommendation", "LSRecMemory"]
