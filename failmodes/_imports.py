"""Optional dependencies: import on use, and name the extra that installs a missing one."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> the extra that installs it
EXTRAS = {
    "open_clip": "clip",
    "torchvision": "clip",
    "diffusers": "diffusion",
    "transformers": "diffusion",
    "openai": "openai",
    "timm": "timm",
    "matplotlib": "plot",
    "ray": "ray",
    "datasets": "datasets",
    "tomli": "all",
}


def require(module: str, *, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise an ImportError that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRAS.get(module.split(".")[0], "all")
        what = f" for {feature}" if feature else ""
        raise ImportError(
            f"{module!r} is needed{what} but is not installed; "
            f'install it with: pip install "failmodes[{extra}]"'
        ) from err
