"""lsrec_hf: a pretrained-transformer sequential recommender on the Hugging Face stack."""

from transformers import AutoConfig, AutoModel

from .catalog import ItemCatalog
from .configuration_lsrec import LSRecConfig
from .modeling_lsrec import LSRecForSequentialRecommendation, LSRecMemory, LSRecModel
from .pipeline_recommendation import RecommendationPipeline  # registers the "recommendation" pipeline task

__version__ = "0.1.0"

AutoConfig.register("lsrec", LSRecConfig)
AutoModel.register(LSRecConfig, LSRecForSequentialRecommendation)

__all__ = ["ItemCatalog", "LSRecConfig", "LSRecModel", "LSRecForSequentialRecommendation", "LSRecMemory"]
