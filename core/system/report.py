"""The system report of ``worldstudio doctor`` (and the studio's Help ▸ System report): what a bug
report needs about this machine, as one block of text or as JSON.

It reads: the OS, Python and World Studio; torch's version and CUDA build; each GPU (name,
compute capability, memory, free memory) and the NVIDIA driver; the attention backends that can
run here; RAM; free disk where projects and models go; the hub cache, offline mode and which
catalogued models are in it; ffmpeg (imageio-ffmpeg's binary) and PyAV; the OpenGL libraries
and the display. Nothing is downloaded and no OpenGL context is made (the studio adds the
renderer's name from its own context).

Every probe is guarded: a machine whose CUDA or ffmpeg is broken is exactly the one a report is
for, so a probe that fails shows its error in its row and the others still run.
"""

from __future__ import annotations

import ctypes.util
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

GIB = 1024**3

# attention backends whose package is optional: (backend names, import name, distribution,
# what the report calls it)
_ATTENTION_PACKAGES = (
    (("flash",), "flash_attn", "flash-attn", "flash-attn"),
    (("flash3",), "flash_attn_interface", "flash-attn-3", "FlashAttention 3"),
    (("sage",), "sageattention", "sageattention", "sageattention"),
    (("xformers",), "xformers", "xformers", "xformers"),
)
# libraries whose versions matter in a report, beyond torch (distribution names)
_LIBRARIES = (
    "diffusers",
    "transformers",
    "accelerate",
    "peft",
    "huggingface_hub",
    "numpy",
    "PySide6-Essentials",
    "vispy",
)


def _dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _guarded(probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``probe()``, or ``{"error": "Type: message"}`` when it fails."""
    from worldstudio.core.jobs.crash import summary

    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - a broken part is reported, not raised
        return {"error": summary(exc)}


# --------------------------------------------------------------------------- probes
def _os_info() -> dict[str, Any]:
    name = platform.platform()
    pretty = None
    if sys.platform.startswith("linux"):
        try:
            pretty = platform.freedesktop_os_release().get("PRETTY_NAME")
        except OSError:
            pretty = None
    return {"platform": name, "distribution": pretty, "machine": platform.machine()}


def _python_info() -> dict[str, Any]:
    return {"version": platform.python_version(), "executable": sys.executable}


def _torch_info() -> dict[str, Any]:
    import torch

    cuda_build = torch.version.cuda
    hip_build = getattr(torch.version, "hip", None)
    out: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": cuda_build,
        "hip_build": hip_build,
        "cudnn": None,
        "cuda_available": bool(torch.cuda.is_available()),
        "mps_available": bool(
            getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        ),
    }
    if out["cuda_available"] and torch.backends.cudnn.is_available():
        out["cudnn"] = torch.backends.cudnn.version()
    return out


def _gpus() -> list[dict[str, Any]]:
    """The CUDA devices torch sees, with their free memory now (reading it makes a CUDA context
    on each device)."""
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        gpus.append(
            {
                "index": i,
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "total_bytes": int(total),
                "free_bytes": int(free),
            }
        )
    return gpus


_NVRM = re.compile(r"Kernel Module(?: for \S+)?\s+([0-9][0-9.]*)")


def _nvidia_driver() -> str | None:
    """The NVIDIA driver's version: from the kernel module, else from nvidia-smi, else None."""
    proc_file = Path("/proc/driver/nvidia/version")
    if proc_file.is_file():
        found = _NVRM.search(proc_file.read_text(errors="replace"))
        if found:
            return found.group(1)
    smi = shutil.which("nvidia-smi")
    if smi:
        run = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
            start_new_session=True,
        )
        lines = run.stdout.strip().splitlines()
        if run.returncode == 0 and lines:
            return lines[0].strip()
    return None


def _attention(device: str) -> dict[str, Any]:
    """The backends the studio can use on ``device`` (the first GPU, else the CPU), and each
    optional attention package: its version, or why it is not usable."""
    import importlib
    import importlib.util

    from worldstudio.core.generation.acceleration import available_attention

    packages: dict[str, str] = {}
    broken: set[str] = set()
    for backends, module, dist, label in _ATTENTION_PACKAGES:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            packages[label] = "not installed"
            continue
        # an installed kernel package built against another torch fails only when imported
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - its import error is what the report says
            from worldstudio.core.jobs.crash import summary

            packages[label] = f"installed, fails to import: {summary(exc)}"
            broken.update(backends)
            continue
        packages[label] = _dist_version(dist) or "installed"
    usable = [name for name in available_attention(device) if name not in broken]
    return {"device": device, "usable": usable, "packages": packages}


def _memory() -> dict[str, Any]:
    from worldstudio.core.generation.memory import host_memory

    total = None
    try:
        total = int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        try:
            import psutil

            total = int(psutil.virtual_memory().total)
        except Exception:  # noqa: BLE001 - psutil missing: the total stays unknown
            total = None
    return {"total_bytes": total, "available_bytes": host_memory()}


def _free_disk(path: Path) -> dict[str, Any]:
    """Free space on the disk that holds ``path`` (or would, for a folder not made yet)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"path": str(path), "exists": path.exists(), "free_bytes": int(usage.free)}


def _hub() -> dict[str, Any]:
    from worldstudio.core.models import CATALOGUE, hub_cache_dir, is_offline, list_status

    statuses = list_status()
    return {
        "cache": str(hub_cache_dir()),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE"),
        "offline": is_offline(),
        "catalogued": len(CATALOGUE),
        "present": [
            {"name": s.info.name, "status": s.status, "path": str(s.path)}
            for s in statuses
            if s.present
        ],
        "incomplete": [s.info.name for s in statuses if s.status == "incomplete"],
    }


def _video() -> dict[str, Any]:
    import importlib.util

    from worldstudio.core.media import ffmpeg_exe, ffmpeg_version

    out: dict[str, Any] = {"imageio_ffmpeg": _dist_version("imageio-ffmpeg")}
    out["pyav"] = _dist_version("av") if importlib.util.find_spec("av") else None
    exe = ffmpeg_exe()
    out["ffmpeg"] = exe
    out["ffmpeg_version"] = ffmpeg_version()
    return out


def _opengl() -> dict[str, Any]:
    """The OpenGL libraries the loader finds and the display the studio would open on; the
    renderer itself is only known inside a context (the studio's report adds it)."""
    libraries = {name: ctypes.util.find_library(name) for name in ("GL", "EGL", "OSMesa")}
    display = {
        var: os.environ.get(var)
        for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "LIBGL_ALWAYS_SOFTWARE")
        if os.environ.get(var)
    }
    return {"libraries": libraries, "display": display, "renderer": None}


# --------------------------------------------------------------------------- the report
def system_report() -> dict[str, Any]:
    """Everything :func:`format_report` prints, as plain JSON-able data."""
    from worldstudio.core.models import hub_cache_dir
    from worldstudio.core.project.places import projects_dir

    torch_info = _guarded(_torch_info)
    gpus: Any = _guarded(lambda: {"gpus": _gpus()})
    gpu_list = gpus.get("gpus", [])
    device = "cuda:0" if gpu_list else "cpu"
    return {
        "worldstudio": _dist_version("world-studio") or "dev",
        "os": _guarded(_os_info),
        "python": _python_info(),
        "torch": torch_info,
        "gpus": gpu_list,
        "gpu_error": gpus.get("error"),
        "nvidia_driver": _guarded(lambda: {"version": _nvidia_driver()}),
        "attention": _guarded(lambda: _attention(device)),
        "memory": _guarded(_memory),
        "disk": {
            "projects": _guarded(lambda: _free_disk(projects_dir(create=False))),
            "hub_cache": _guarded(lambda: _free_disk(hub_cache_dir())),
        },
        "hub": _guarded(_hub),
        "video": _guarded(_video),
        "opengl": _guarded(_opengl),
        "libraries": {name: _dist_version(name) for name in _LIBRARIES},
    }


def _gib(n: int | None) -> str:
    return "unknown" if n is None else f"{n / GIB:.1f} GiB"


def _torch_line(t: dict[str, Any]) -> str:
    if "error" in t:
        return f"cannot be imported: {t['error']}"
    if t.get("cuda_build"):
        build = f"CUDA {t['cuda_build']} build"
        if t.get("cudnn"):
            build += f", cuDNN {t['cudnn']}"
    elif t.get("hip_build"):
        build = f"ROCm/HIP {t['hip_build']} build"
    else:
        build = "CPU build, no CUDA"
    if t.get("cuda_build") and not t.get("cuda_available"):
        build += "; CUDA not available at run time"
    if t.get("mps_available"):
        build += "; Apple MPS available"
    return f"{t['version']} ({build})"


def _disk_line(d: dict[str, Any]) -> str:
    if "error" in d:
        return f"error: {d['error']}"
    note = "" if d["exists"] else " (not created yet)"
    return f"{_gib(d['free_bytes'])} free in {d['path']}{note}"


def _video_lines(v: dict[str, Any]) -> list[str]:
    if "error" in v:
        return [f"error: {v['error']}"]
    pyav = f"PyAV {v['pyav']}" if v.get("pyav") else "PyAV not installed"
    return [f"{v['ffmpeg_version']}; imageio-ffmpeg {v['imageio_ffmpeg']}; {pyav}", v["ffmpeg"]]


def _opengl_lines(g: dict[str, Any]) -> list[str]:
    if "error" in g:
        return [f"error: {g['error']}"]
    libs = [lib for lib in g["libraries"].values() if lib] or ["no OpenGL library found"]
    display = ", ".join(f"{k}={v}" for k, v in g["display"].items()) or "no display set"
    first = f"{', '.join(libs)}; {display}"
    if g.get("qt_platform"):
        first += f"; Qt platform {g['qt_platform']}"
    renderer = g.get("renderer") or "shown by the studio's Help > System report"
    return [first, f"renderer: {renderer}"]


def format_report(report: dict[str, Any]) -> str:
    """The report as one block of ``label  value`` lines, to paste into a bug report."""
    rows: list[tuple[str, str]] = []
    osinfo = report["os"]
    rows.append(
        (
            "OS",
            f"error: {osinfo['error']}"
            if "error" in osinfo
            else (
                f"{osinfo['distribution']} ({osinfo['platform']})"
                if osinfo.get("distribution")
                else osinfo["platform"]
            ),
        )
    )
    rows.append(("Python", f"{report['python']['version']} ({report['python']['executable']})"))
    rows.append(("torch", _torch_line(report["torch"])))
    if report.get("gpu_error"):
        rows.append(("GPUs", f"error: {report['gpu_error']}"))
    elif not report["gpus"]:
        rows.append(("GPUs", "none that torch can use"))
    for gpu in report["gpus"]:
        rows.append(
            (
                f"GPU {gpu['index']}",
                f"{gpu['name']}, compute {gpu['capability']}, {_gib(gpu['total_bytes'])}, "
                f"{_gib(gpu['free_bytes'])} free",
            )
        )
    driver = report["nvidia_driver"]
    rows.append(
        (
            "NVIDIA driver",
            f"error: {driver['error']}" if "error" in driver else driver["version"] or "not found",
        )
    )
    att = report["attention"]
    if "error" in att:
        rows.append(("Attention", f"error: {att['error']}"))
    else:
        rows.append(("Attention", f"{', '.join(att['usable'])} (on {att['device']})"))
        rows.append(("", "; ".join(f"{name} {state}" for name, state in att["packages"].items())))
    mem = report["memory"]
    rows.append(
        (
            "RAM",
            f"error: {mem['error']}"
            if "error" in mem
            else f"{_gib(mem['total_bytes'])} total, {_gib(mem['available_bytes'])} available",
        )
    )
    rows.append(("Disk, projects", _disk_line(report["disk"]["projects"])))
    rows.append(("Disk, hub cache", _disk_line(report["disk"]["hub_cache"])))
    hub = report["hub"]
    if "error" in hub:
        rows.append(("Hub cache", f"error: {hub['error']}"))
    else:
        offline = hub["HF_HUB_OFFLINE"]
        mode = "offline" if hub["offline"] else "online"
        rows.append(("Hub cache", f"{hub['cache']} (HF_HUB_OFFLINE={offline or 'unset'}: {mode})"))
        present = ", ".join(m["name"] for m in hub["present"]) or "none"
        rows.append(("Models", f"{len(hub['present'])} of {hub['catalogued']} present: {present}"))
        if hub["incomplete"]:
            rows.append(("", f"partly downloaded: {', '.join(hub['incomplete'])}"))
    for label, lines in (
        ("ffmpeg", _video_lines(report["video"])),
        ("OpenGL", _opengl_lines(report["opengl"])),
    ):
        rows += [(label if i == 0 else "", line) for i, line in enumerate(lines)]
    libs = [f"{k} {v}" for k, v in report["libraries"].items() if v]
    half = (len(libs) + 1) // 2
    rows.append(("Libraries", ", ".join(libs[:half])))
    if libs[half:]:
        rows.append(("", ", ".join(libs[half:])))
    width = max(len(label) for label, _ in rows) + 2
    head = f"World Studio {report['worldstudio']}, system report"
    return "\n".join([head, *(f"{label:<{width}}{value}" for label, value in rows)])
