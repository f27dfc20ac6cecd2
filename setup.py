"""Package mapping (the rest of the metadata is in pyproject.toml).

The repository keeps ``core/`` and ``studio/`` at its top; both install under the one import name
``worldstudio`` (``worldstudio.core``, ``worldstudio.studio``), for wheels and editable installs.
"""

from setuptools import find_packages, setup

PARTS = ("core", "studio")


def _packages() -> list[str]:
    found = ["worldstudio"]
    for part in PARTS:
        found += [f"worldstudio.{part}"] + [f"worldstudio.{part}.{p}" for p in find_packages(part)]
    return found


setup(
    packages=_packages(),
    package_dir={"worldstudio": "worldstudio", **{f"worldstudio.{part}": part for part in PARTS}},
)
