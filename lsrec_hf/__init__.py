"""lsrec_hf: a pretrained-transformer sequential recommender on the Hugging Face stack."""

from importlib import metadata as _metadata

from transformers import AutoConfig, AutoModel

from .catalog import ItemCatalog
from .configuration_lsrec import LSRecConfig
from .modeling_lsrec import LSRecForSequentialRecommendation, LSRecMemory, LSRecModel
from .pipeline_recommendation import RecommendationPipeline  # registers the "recommendation" pipeline task

try:  # the installed distribution's version: one number, in pyproject.toml
    __version__ = _metadata.version("lsrec_hf")
except _metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

AutoConfig.register("lsrec", LSRecConfig)
AutoModel.register(LSRecConfig, LSRecForSequentialRecommendation)

__all__ = ["ItemCatalog", "LSRecConfig", "LSRecModel", "LSRecForSequentialRecommendation", "LSRecMemory"]
