"""Where models live: the Hugging Face cache, local-folder overrides, downloads, offline checks.

A model is found, in this order:

1. a local folder given for this session (``--model-dir NAME=PATH`` on the command line, or
   :func:`set_local_dir` from the studio);
2. a local folder from the config file ``models.json`` in the config folder
   (``$WORLDSTUDIO_CONFIG``, else ``$XDG_CONFIG_HOME/worldstudio``, else
   ``~/.config/worldstudio``)::

       {"local_dirs": {"depth-anything-v2-small": "/data/models/da2-small"}}

3. the Hugging Face hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), read at call time so tests and users can point it anywhere.

A local folder must hold what the hub repo holds (``config.json`` and safetensors weights, or a
diffusers ``model_index.json`` with its component folders).

Downloads go through ``huggingface_hub.snapshot_download`` (resumable: finished files are kept,
partial ones continue). With ``HF_HUB_OFFLINE`` set, or when the hub cannot be reached within a
couple of seconds, a missing model fails at once with one :class:`ModelMissingError` line that
says which model, how big it is and how to get it.

huggingface_hub is imported lazily; nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.fileio import parse_json
from worldstudio.core.models.catalogue import CATALOGUE, ModelInfo, find_model

if TYPE_CHECKING:
    from worldstudio.core.jobs import JobContext

ProgressFn = Callable[[int, int, str], None]


class ModelError(WorldStudioError):
    """A model that cannot be found, downloaded or loaded."""


class ModelMissingError(ModelError):
    """A model that is not on this machine and cannot be downloaded now."""


# --------------------------------------------------------------------------- locations
_TRUE = {"1", "on", "yes", "true"}


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return True
    return False


def hub_cache_dir() -> Path:
    """The hub cache folder, from the environment at call time."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def config_dir() -> Path:
    """The World Studio config folder (``$WORLDSTUDIO_CONFIG`` overrides)."""
    env = os.environ.get("WORLDSTUDIO_CONFIG")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "worldstudio"


def config_file() -> Path:
    return config_dir() / "models.json"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


# --------------------------------------------------------------------------- overrides
_session_dirs: dict[str, Path] = {}
_lock = threading.Lock()


def _info_or_error(name: str) -> ModelInfo:
    info = find_model(name)
    if info is None:
        known = ", ".join(m.name for m in CATALOGUE)
        raise ModelError(f"unknown model {name!r}; known models: {known}")
    return info


def get_model(name: str) -> ModelInfo:
    """The catalogue entry for a short name or hub repo id; :class:`ModelError` (listing the
    known names) when there is none."""
    return _info_or_error(name)


def set_local_dir(name: str, path: str | os.PathLike | None) -> None:
    """Use the folder ``path`` for model ``name`` in this process (None removes the override)."""
    info = _info_or_error(name)
    with _lock:
        if path is None:
            _session_dirs.pop(info.name, None)
        else:
            _session_dirs[info.name] = Path(path).expanduser()


def clear_local_dirs() -> None:
    """Forget every override set with :func:`set_local_dir` (the config file stays)."""
    with _lock:
        _session_dirs.clear()


def parse_model_dir(text: str) -> tuple[str, Path]:
    """``'NAME=PATH'`` (the ``--model-dir`` option) -> (catalogue name, path)."""
    if "=" not in text:
        raise ModelError(f"--model-dir: expected NAME=PATH, got {text!r}")
    name, path = text.split("=", 1)
    if not name.strip() or not path.strip():
        raise ModelError(f"--model-dir: expected NAME=PATH, got {text!r}")
    return _info_or_error(name.strip()).name, Path(path.strip()).expanduser()


def apply_model_dirs(values: list[str] | None) -> None:
    """Apply every ``--model-dir NAME=PATH`` value to this process."""
    for text in values or []:
        name, path = parse_model_dir(text)
        set_local_dir(name, path)


def add_model_dir_option(parser) -> None:
    """Add ``--model-dir NAME=PATH`` (repeatable) to an argparse parser; apply it with
    ``apply_model_dirs(args.model_dir)`` in the handler."""
    parser.add_argument(
        "--model-dir",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use a local folder for a model instead of the hub cache (repeatable)",
    )


def _config_dirs() -> dict[str, Path]:
    path = config_file()
    if not path.is_file():
        return {}
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    raw = parse_json(text, f"{path}: cannot be read as JSON", ModelError)
    dirs = raw.get("local_dirs", {}) if isinstance(raw, dict) else None
    if not isinstance(dirs, dict):
        raise ModelError(f"{path}: 'local_dirs' must be an object mapping model names to folders")
    out: dict[str, Path] = {}
    for key, value in dirs.items():
        info = find_model(str(key))
        if info is None:
            raise ModelError(f"{path}: local_dirs: unknown model {key!r}")
        if not isinstance(value, str) or not value:
            raise ModelError(f"{path}: local_dirs.{key}: expected a folder path")
        folder = Path(value).expanduser()
        if not folder.is_absolute():
            folder = path.parent / folder
        out[info.name] = folder
    return out


def save_local_dir_to_config(name: str, path: str | os.PathLike | None) -> Path:
    """Record (or with None remove) a local folder for ``name`` in models.json; returns the file."""
    from worldstudio.core.project import atomic_write_bytes

    info = _info_or_error(name)
    cfg = config_file()
    raw: dict = {}
    if cfg.is_file():
        try:
            text = cfg.read_bytes()
        except OSError as exc:
            raise ModelError(f"{cfg}: cannot be read ({exc.strerror or exc})") from exc
        raw = parse_json(text, f"{cfg}: cannot be read as JSON", ModelError)
        if not isinstance(raw, dict):
            raise ModelError(f"{cfg}: expected a JSON object")
    dirs = dict(raw.get("local_dirs") or {})
    if path is None:
        dirs.pop(info.name, None)
    else:
        dirs[info.name] = str(Path(path).expanduser().resolve())
    raw["local_dirs"] = dirs
    atomic_write_bytes(cfg, (json.dumps(raw, indent=2) + "\n").encode("utf-8"))
    return cfg


def local_dir_override(info: ModelInfo) -> tuple[Path, str] | None:
    """(folder, where it was set) for a model with a local-folder override, else None."""
    with _lock:
        session = _session_dirs.get(info.name)
    if session is not None:
        return session, "--model-dir"
    cfg = _config_dirs().get(info.name)
    if cfg is not None:
        return cfg, str(config_file())
    return None


# --------------------------------------------------------------------------- presence
def _weights_complete(folder: Path) -> bool:
    """True when ``folder`` holds safetensors weights and every shard its index lists."""
    indexes = list(folder.glob("*.safetensors.index.json"))
    for index in indexes:
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return False
        if not all((folder / s).is_file() for s in shards):
            return False
    return bool(indexes) or any(folder.glob("*.safetensors"))


def is_complete(folder: Path, library: str = "transformers", files: tuple[str, ...] = ()) -> bool:
    """Does ``folder`` hold a loadable model (configs and all weights; for a ``checkpoint`` entry,
    every file of ``files``)?"""
    if not folder.is_dir():
        return False
    if library == "checkpoint":
        return bool(files) and all((folder / f).is_file() for f in files)
    if library == "diffusers":
        index = folder / "model_index.json"
        try:
            components = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        for key, value in components.items():
            if key.startswith("_") or not isinstance(value, list) or value[0] is None:
                continue
            sub = folder / key
            if not sub.is_dir():
                return False
            if key.startswith(("transformer", "vae", "text_encoder", "image_encoder")):
                if not _weights_complete(sub):
                    return False
        return True
    return (folder / "config.json").is_file() and _weights_complete(folder)


def expected_content(info: ModelInfo) -> str:
    """What a folder holding ``info`` must contain, for messages."""
    if info.library == "checkpoint":
        return ", ".join(info.files)
    what = "model_index.json" if info.library == "diffusers" else "config.json"
    return f"{what} and safetensors weights"


def _cached_snapshot(info: ModelInfo) -> Path | None:
    """The snapshot folder of ``info`` in the hub cache, or None. Never touches the network."""
    storage = hub_cache_dir() / ("models--" + info.repo_id.replace("/", "--"))
    if not storage.is_dir():
        return None
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            info.repo_id, cache_dir=str(hub_cache_dir()), local_files_only=True
        )
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError and friends: not cached
        return None
    return Path(path)


Status = Literal["downloaded", "missing", "local", "local-missing", "incomplete"]


@dataclass(frozen=True)
class ModelStatus:
    info: ModelInfo
    status: Status
    path: Path | None  # the folder the model loads from (None when missing)
    where: str  # a short human explanation

    @property
    def present(self) -> bool:
        return self.status in ("downloaded", "local")


def model_status(name: str | ModelInfo) -> ModelStatus:
    """Is the model on this machine, and where? Never touches the network."""
    info = name if isinstance(name, ModelInfo) else _info_or_error(name)
    override = local_dir_override(info)
    if override is not None:
        folder, source = override
        if is_complete(folder, info.library, info.files):
            return ModelStatus(info, "local", folder, f"local folder {folder} (from {source})")
        return ModelStatus(
            info,
            "local-missing",
            None,
            f"local folder {folder} (from {source}) does not hold the model ({expected_content(info)})",
        )
    snap = _cached_snapshot(info)
    if snap is not None and is_complete(snap, info.library, info.files):
        return ModelStatus(info, "downloaded", snap, f"hub cache {snap}")
    if snap is not None:
        return ModelStatus(info, "incomplete", None, f"partly downloaded in {hub_cache_dir()}")
    return ModelStatus(info, "missing", None, f"not in {hub_cache_dir()}")


def list_status(kind: str | None = None) -> list[ModelStatus]:
    return [model_status(m) for m in CATALOGUE if kind is None or m.kind == kind]


# --------------------------------------------------------------------------- network
def _can_reach_hub(timeout: float = 3.0) -> tuple[bool, str]:
    """(reachable, why not). A TCP connect to the hub endpoint, bounded by ``timeout`` even when
    name resolution hangs (it runs in a daemon thread)."""
    import socket

    url = urlparse(hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    result: dict[str, object] = {}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError as exc:
            result["error"] = exc

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    if result.get("ok"):
        return True, ""
    err = result.get("error")
    return False, f"cannot reach {host} ({err or 'timed out'})"


def offline_reason() -> str | None:
    """Why models cannot be downloaded right now, or None when they can."""
    if is_offline():
        return "HF_HUB_OFFLINE is set"
    ok, why = _can_reach_hub()
    return None if ok else f"no network: {why}"


def missing_message(info: ModelInfo, reason: str) -> str:
    return (
        f"model {info.name} ({info.repo_id}, {info.size_text} download) is not on this machine "
        f"and cannot be downloaded now ({reason}); get it with `worldstudio models download "
        f"{info.name}` on a machine with internet access, or point `--model-dir {info.name}=PATH` "
        f"(or local_dirs in {config_file()}) at a folder holding it"
    )


# --------------------------------------------------------------------------- download
def _progress_tqdm(callback: ProgressFn, label: str):
    """A tqdm class for snapshot_download that prints nothing and reports downloaded bytes."""
    import io

    from tqdm.auto import tqdm

    class _Reporter(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def display(self, *args, **kwargs):
            return None

        def update(self, n=1):
            out = super().update(n)
            # the byte bars ("Downloading bytes", "Reconstructing ...") carry unit "B"
            if self.unit == "B" and self.total and str(self.desc).startswith("Reconstruct"):
                callback(int(self.n), int(self.total), label)
            return out

    return _Reporter


def check_can_download(name: str | ModelInfo, *, check_network: bool = True) -> None:
    """Raise :class:`ModelMissingError` at once when downloads are impossible right now."""
    info = name if isinstance(name, ModelInfo) else _info_or_error(name)
    if is_offline():
        reason = "HF_HUB_OFFLINE is set"
    elif check_network:
        ok, why = _can_reach_hub()
        reason = "" if ok else f"no network: {why}"
    else:
        reason = ""
    if reason:
        raise ModelMissingError(
            f"cannot download model {info.name} ({info.repo_id}, {info.size_text}): {reason}; "
            f"{'unset HF_HUB_OFFLINE' if is_offline() else 'connect this machine to the internet'}"
            f" and run `worldstudio models download {info.name}` again, or copy the model to a "
            f"folder and use `--model-dir {info.name}=PATH`"
        )


def download(
    name: str | ModelInfo,
    progress: ProgressFn | None = None,
    *,
    force: bool = False,
    check_network: bool = True,
) -> Path:
    """Download ``name`` into the hub cache (resumable) and return the folder it loads from.

    ``progress(done_bytes, total_bytes, message)`` is called as bytes arrive. A model with a local
    override or already complete in the cache is not downloaded again (unless ``force``).
    """
    info = name if isinstance(name, ModelInfo) else _info_or_error(name)
    status = model_status(info)
    if status.status == "local":
        return status.path  # type: ignore[return-value]  # a present model has its path
    if status.status == "local-missing":
        raise ModelError(f"model {info.name}: {status.where}")
    if status.status == "downloaded" and not force:
        return status.path  # type: ignore[return-value]  # a present model has its path
    check_can_download(info, check_network=check_network)
    from huggingface_hub import snapshot_download

    kwargs = {}
    if progress is not None:
        kwargs["tqdm_class"] = _progress_tqdm(progress, f"{info.name}")
    cache = hub_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        path = snapshot_download(
            info.repo_id,
            cache_dir=str(cache),
            allow_patterns=list(info.allow_patterns),
            force_download=force,
            **kwargs,
        )
    except (WorldStudioError, Cancelled):
        raise
    except Exception as exc:
        raise ModelError(
            f"downloading model {info.name} ({info.repo_id}) failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else exc!r}; run the command again to resume"
        ) from exc
    folder = Path(path)
    if not is_complete(folder, info.library, info.files):
        raise ModelError(
            f"model {info.name}: the download in {folder} is incomplete (no config or weights); "
            f"run `worldstudio models download {info.name}` again"
        )
    return folder


def resolve(
    name: str | ModelInfo,
    *,
    allow_download: bool = True,
    progress: ProgressFn | None = None,
) -> Path:
    """The local folder to load model ``name`` from; downloads it when it is missing and this
    machine is online (and ``allow_download``), else raises :class:`ModelMissingError` at once."""
    info = name if isinstance(name, ModelInfo) else _info_or_error(name)
    status = model_status(info)
    if status.present:
        return status.path  # type: ignore[return-value]  # a present model has its path
    if status.status == "local-missing":
        raise ModelError(f"model {info.name}: {status.where}")
    if not allow_download:
        raise ModelMissingError(missing_message(info, "downloads are off here"))
    reason = offline_reason()
    if reason:
        raise ModelMissingError(missing_message(info, reason))
    return download(info, progress, check_network=False)


def resolve_with_context(name: str | ModelInfo, ctx: JobContext | None = None) -> Path:
    """:func:`resolve` reporting a download's bytes to a job context."""
    progress = None
    if ctx is not None:

        def progress(done: int, total: int, message: str) -> None:
            ctx.check_cancelled()
            ctx.progress(done, total, f"downloading {message}")

    return resolve(name, progress=progress)


def download_job(name: str, force: bool = False) -> Callable[[JobContext], Path]:
    """A job (for the studio's worker) that downloads ``name`` with byte progress; cancelling
    stops it at the next chunk (the partial download resumes next time)."""
    info = _info_or_error(name)

    def job(ctx: JobContext) -> Path:
        ctx.log(f"downloading {info.name} ({info.repo_id}, {info.size_text})")

        def progress(done: int, total: int, message: str) -> None:
            ctx.check_cancelled()
            ctx.progress(done, total, message)

        path = download(info, progress, force=force)
        ctx.log(f"{info.name} is in {path}")
        return path

    return job
