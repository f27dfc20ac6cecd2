"""The model catalogue and manager: names, hub repo ids, licences, sizes, memory needs; the hub
cache, local-folder overrides, downloads and offline detection.

Importing this package imports neither torch nor huggingface_hub.
"""

from worldstudio.core.models.catalogue import (
    CATALOGUE,
    KINDS,
    ModelInfo,
    all_models,
    default_model,
    find_model,
    format_bytes,
)
from worldstudio.core.models.manager import (
    ModelError,
    ModelMissingError,
    ModelStatus,
    add_model_dir_option,
    apply_model_dirs,
    clear_local_dirs,
    config_file,
    download,
    download_job,
    get_model,
    hub_cache_dir,
    is_offline,
    list_status,
    model_status,
    resolve,
    resolve_with_context,
    save_local_dir_to_config,
    set_local_dir,
)

__all__ = [
    "CATALOGUE",
    "KINDS",
    "ModelError",
    "ModelInfo",
    "ModelMissingError",
    "ModelStatus",
    "add_model_dir_option",
    "all_models",
    "apply_model_dirs",
    "clear_local_dirs",
    "config_file",
    "default_model",
    "download",
    "download_job",
    "find_model",
    "format_bytes",
    "get_model",
    "hub_cache_dir",
    "is_offline",
    "list_status",
    "model_status",
    "resolve",
    "resolve_with_context",
    "save_local_dir_to_config",
    "set_local_dir",
]
