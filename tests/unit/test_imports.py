"""``import failmodes`` needs only the base dependencies; a missing extra names itself."""

import subprocess
import sys

import pytest

from failmodes._imports import require

BLOCK = (
    "import sys\nfor m in ('open_clip', 'torchvision', 'diffusers', 'transformers', 'openai', "
    "'timm', 'matplotlib'):\n    sys.modules[m] = None\n"
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=120
    )


def test_import_without_extras():
    proc = _run(
        "import failmodes, failmodes.toyworld\n"
        "from failmodes import Debugger, TorchExtractor, StaticProposer, "
        "LinearHeadTrainer, CLIPCaptioner, TimmExtractor, OpenCLIPExtractor, ChatGPTProposer, "
        "StableDiffusionGenerator\n"
        "import failmodes.testing, failmodes.testing.tiny, failmodes.generators\n"
        "import failmodes.filters\n"
        "import failmodes.testing.openai_server, failmodes.proposers, failmodes.extractors\n"
        "print('ok')"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_missing_extra_is_named_when_used():
    proc = _run(
        "from failmodes.toyworld import toyclip_captioner\n"
        "from PIL import Image\n"
        "toyclip_captioner().caption([Image.new('RGB', (32, 32))], image_classes=['circle'],"
        " candidates={'circle': ['on grass']})"
    )
    assert proc.returncode != 0
    assert 'pip install "failmodes[clip]"' in proc.stderr


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        ("from failmodes import TimmExtractor\nTimmExtractor('resnet18').head", "timm"),
        ("from failmodes import OpenCLIPExtractor\nOpenCLIPExtractor('ViT-B-32').head", "clip"),
        ("from failmodes.testing.tiny import tiny_clip\ntiny_clip()", "clip"),
        (
            "from failmodes.proposers.chatgpt import ChatGPTProposer\n"
            "ChatGPTProposer(base_url='http://127.0.0.1:9/v1').propose(['fox'])",
            "openai",
        ),
    ],
)
def test_missing_backend_names_its_extra(code, extra):
    proc = _run(code)
    assert proc.returncode != 0
    assert f'pip install "failmodes[{extra}]"' in proc.stderr


def test_require_names_the_extra():
    with pytest.raises(ImportError, match=r"failmodes\[diffusion\]"):
        require("diffusers.not_a_module_of_it")
