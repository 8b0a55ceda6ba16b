"""Model zoo: ``create_model(name)`` over one registry; see ``ferkit models`` for the list."""
from . import tiny, vgg_fer  # noqa: F401  (modules register their architectures on import)
from . import cnn5, efficientnet, fusion, handmade, jahromi, resnet, sepconv, vgg  # noqa: F401  (the seed papers' model zoo)
from .registry import count_parameters, create_model, list_models, model_info, model_names, register_model

__all__ = ["count_parameters", "create_model", "list_models", "model_info", "model_names", "register_model"]
