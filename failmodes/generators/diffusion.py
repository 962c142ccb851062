"""Stable Diffusion text-to-image generation on diffusers, the paper's image generator.

diffusers is imported, and the pipeline built or downloaded, only when the first images are
made: constructing a [`StableDiffusionGenerator`][StableDiffusionGenerator] is free and needs no
extra.
"""

from __future__ import annotations

import hashlib
import logging
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from failmodes._imports import require
from failmodes.images import is_blank
from failmodes.interfaces import GenerationRequest, ImageGenerator
from failmodes.progress import progress_bar, resolve_progress

__all__ = ["SCHEDULERS", "BlankImageError", "StableDiffusionGenerator", "replacement_seed"]

logger = logging.getLogger("failmodes")

# scheduler name -> (diffusers class, options over the pipeline's scheduler configuration)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "pndm": ("PNDMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {}),
    "dpm++_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
}
"""Scheduler names accepted by ``scheduler=``: name -> (diffusers class, its settings)."""
_ALIASES = {
    "dpm++_2m": "dpm++",
    "dpm++2m": "dpm++",
    "dpmsolver++": "dpm++",
    "dpm++_2m_karras": "dpm++_karras",
    "dpm++2m_karras": "dpm++_karras",
    "euler_ancestral": "euler_a",
}

# the constructor's arguments, in order, for __repr__
_PARAMS = (
    "model",
    "steps",
    "guidance_scale",
    "scheduler",
    "negative_prompt",
    "height",
    "width",
    "batch_size",
    "device",
    "dtype",
    "attention_slicing",
    "enable_xformers",
    "safety_checker",
    "max_blank_retries",
    "revision",
    "variant",
    "load_kwargs",
    "progress",
)


class BlankImageError(RuntimeError):
    """An image stayed blank (flagged by the safety checker, or one flat colour) after retries.

    Args:
        request: the request the image belongs to.
        index: the image's index in the request.
        seeds: the seeds tried, the request's own first.

    Attributes:
        request: the request the image belongs to.
        index: the image's index in the request.
        seeds: the seeds tried, the request's own first.

    Examples:
        >>> from failmodes import GenerationRequest
        >>> from failmodes.generators import BlankImageError, replacement_seed
        >>> request = GenerationRequest(0, "fox", None, "a photo of a fox", 1, 0)
        >>> seeds = [request.image_seed(0), replacement_seed(request, 0, 1)]
        >>> error = BlankImageError(request, 0, seeds)
        >>> error.index, error.seeds == seeds
        (0, True)
    """

    def __init__(self, request: GenerationRequest, index: int, seeds: Sequence[int]):
        self.request = request
        self.index = index
        self.seeds = list(seeds)
        retries = len(self.seeds) - 1
        super().__init__(
            f"image {index} of the request for class {request.class_name!r} with "
            f"{request.attribute} {request.value!r} (prompt {request.prompt!r}) came out blank "
            f"with its seed {self.seeds[0]} and with {retries} replacement seed(s) "
            f"{self.seeds[1:]}: the pipeline's safety checker flagged it, or it is one flat "
            "colour. Raise max_blank_retries, change the prompt, or turn the checker off with "
            "safety_checker=False"
        )


def replacement_seed(request: GenerationRequest, index: int, attempt: int) -> int:
    """The seed of the ``attempt``-th regeneration of a blank image (``attempt >= 1``).

    It is derived from ``request.image_seed(index)`` and ``attempt`` alone, so, like the image
    seed, it does not depend on ``request.count`` nor on the other requests of a run.

    Args:
        request: the request the image belongs to.
        index: the image's index in the request, in ``range(request.count)``.
        attempt: which regeneration, from 1.

    Returns:
        A seed in ``[0, 2**31)``.

    Raises:
        ValueError: if ``attempt`` is less than 1.
        IndexError: if ``index`` is not in ``range(request.count)``.

    Examples:
        >>> from failmodes import GenerationRequest
        >>> req = GenerationRequest(0, "fox", "in a desert", "a photo of a fox in a desert", 4, 0)
        >>> replacement_seed(req, 2, 1) == replacement_seed(req, 2, 1) != req.image_seed(2)
        True
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    blob = f"failmodes-blank-retry:{request.image_seed(index)}:{attempt}"
    digest = hashlib.sha256(blob.encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class StableDiffusionGenerator(ImageGenerator):
    """Make the requested images with a Stable Diffusion pipeline of diffusers.

    The paper generates its images with Stable Diffusion v1-5 from diffusers and reports no
    sampling settings, so the defaults are the pipeline's own: 50 steps of its PNDM scheduler,
    a guidance scale of 7.5, 512x512 images and the model's safety checker.

    **Seeds.** Image ``i`` of a request is drawn from its own ``torch.Generator``, seeded with
    ``request.image_seed(i)`` (for the initial noise and for the noise of stochastic schedulers),
    so it does not depend on the other images it is batched with: images of several requests are
    batched together up to ``batch_size``, and a request generated alone, with a smaller
    ``count`` or among others gives the same image for the same index, up to floating-point
    rounding, which kernels do differently for different batch sizes (on a CPU, a few pixel
    values differ by one level). The same requests with the same settings give the same images
    bit for bit on a CPU. The noise is drawn on the CPU, so a GPU starts from the same noise.

    **Blank images.** An image that the safety checker flagged (the pipeline's
    ``nsfw_content_detected``), or that is one flat colour (a checker that blanks without saying
    so), is never returned: it is regenerated from [`replacement_seed`][replacement_seed]
    ``(request, i, 1)``, then ``2``, and so on, up to ``max_blank_retries`` times, after which
    [`BlankImageError`][BlankImageError] is raised. ``blank_replaced_`` counts the replaced images
    of each request and ``seeds_`` gives the seed each returned image came from.

    Nothing is loaded when the generator is made: a model given by name is read (or downloaded)
    by ``StableDiffusionPipeline.from_pretrained`` on the first call to [`generate`][generate]. The
    settings that shape the pipeline (``model``, ``scheduler``, ``device``, ``dtype``, the
    attention settings, ``safety_checker`` and the loading options) are read then, once; the
    others at every call.

    Args:
        model: a model on the Hugging Face hub or a local folder in diffusers' layout, or a
            pipeline object: a ``StableDiffusionPipeline`` or any diffusers text-to-image
            pipeline that takes ``prompt``, ``negative_prompt``, ``num_inference_steps``,
            ``guidance_scale``, ``height``, ``width`` and ``generator``. A diffusers pipeline
            object is not changed: the generator runs a new pipeline made of its components,
            though ``device``, ``dtype`` and the attention settings apply to those components.
        steps: denoising steps per image (``num_inference_steps``).
        guidance_scale: classifier-free guidance scale; ``<= 1`` turns guidance off.
        scheduler: ``None`` keeps the pipeline's scheduler; a name from [`SCHEDULERS`][SCHEDULERS]
            (``"pndm"``, ``"ddim"``, ``"euler"``, ``"euler_a"``, ``"dpm++"``, ...) makes that
            diffusers scheduler from the pipeline's scheduler configuration; a scheduler class
            likewise; a scheduler object is used as it is.
        negative_prompt: text to steer away from, for every image; ``None`` for none.
        height: image height in pixels, a multiple of 8; ``None`` for the pipeline's default.
        width: image width in pixels, a multiple of 8; ``None`` for the pipeline's default.
        batch_size: images per pipeline call, across requests.
        device: where the pipeline runs; ``None`` for ``"cuda"`` when available, else ``"cpu"``.
        dtype: the weights' dtype. ``None``: for a model name, float16 on CUDA and float32
            elsewhere; for a pipeline object, its own.
        attention_slicing: compute attention in slices to save memory (slower): ``True`` for
            diffusers' ``"auto"``, or a slice size (``"max"`` or an int).
        enable_xformers: use xformers' memory-efficient attention (it must be installed).
            Otherwise diffusers uses PyTorch's scaled-dot-product attention.
        safety_checker: ``True`` keeps the model's safety checker; ``False`` runs without one
            (and does not load it); a module with the checker's call protocol replaces it.
        max_blank_retries: regenerations with a new seed of an image that came out blank
            before [`BlankImageError`][BlankImageError] is raised; 0 raises at the first blank
            image.
        revision: the model's revision (branch, tag or commit) on the hub, for a model name.
        variant: the weights' variant (``"fp16"`` downloads half-precision files), for a name.
        load_kwargs: more keyword arguments for ``from_pretrained`` (``cache_dir``,
            ``local_files_only``, ``token``), for a model name.
        progress: show a progress bar over images; ``None`` shows it on a terminal only.

    Attributes:
        pipeline_: the pipeline in use (after [`load`][load] or the first [`generate`][generate]).
        device_: the device it runs on.
        blank_replaced_: for each request of the last [`generate`][generate] call, in order, the
            number of its images that came out blank and were regenerated with a new seed.
        seeds_: for each request of the last call, the seed of each returned image:
            ``request.image_seed(i)``, or the replacement seed that gave the image.

    Examples:
        On the tiny test pipeline (random weights, 64x64 noise-like images, offline):

        >>> from failmodes import GenerationRequest
        >>> from failmodes.generators import StableDiffusionGenerator
        >>> from failmodes.testing.tiny import tiny_stable_diffusion
        >>> gen = StableDiffusionGenerator(tiny_stable_diffusion(), steps=2, device="cpu")
        >>> req = GenerationRequest(0, "fox", "in a desert", "a photo of a fox in a desert", 3, 0)
        >>> images = gen.generate([req], progress=False)[0]
        >>> [(im.mode, im.size) for im in images]
        [('RGB', (64, 64)), ('RGB', (64, 64)), ('RGB', (64, 64))]
        >>> gen.blank_replaced_
        [0]

        The paper's setting, on a GPU:

        ```python
        gen = StableDiffusionGenerator("stable-diffusion-v1-5/stable-diffusion-v1-5")
        gen.generate(requests)  # downloads the model on first use
        ```
    """

    _pipeline_class = "StableDiffusionPipeline"  # what a model given by name is loaded as
    _more_params: tuple[str, ...] = ()  # a subclass's own settings, for repr and cache keys

    def __init__(
        self,
        model: str | Any = "stable-diffusion-v1-5/stable-diffusion-v1-5",
        *,
        steps: int = 50,
        guidance_scale: float = 7.5,
        scheduler: str | Any | None = None,
        negative_prompt: str | None = None,
        height: int | None = None,
        width: int | None = None,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        attention_slicing: bool | str | int = False,
        enable_xformers: bool = False,
        safety_checker: bool | torch.nn.Module = True,
        max_blank_retries: int = 3,
        revision: str | None = None,
        variant: str | None = None,
        load_kwargs: dict[str, Any] | None = None,
        progress: bool | None = None,
    ):
        self.model = model
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.scheduler = scheduler
        self.negative_prompt = negative_prompt
        self.height = height
        self.width = width
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.attention_slicing = attention_slicing
        self.enable_xformers = enable_xformers
        self.safety_checker = safety_checker
        self.max_blank_retries = max_blank_retries
        self.revision = revision
        self.variant = variant
        self.load_kwargs = load_kwargs
        self.progress = progress

    def cache_key(self) -> dict[str, Any]:
        """What the images depend on, for [`failmodes.cache`][failmodes.cache].

        A model by name is named (with its revision and variant); a pipeline object is
        described by a hash of its modules' weights (computed once per pipeline object) and its
        scheduler's configuration.

        Returns:
            JSON-ready settings: the class, the model, ``revision``, ``variant``, ``steps``,
            ``guidance_scale``, the scheduler, ``negative_prompt``, ``height``, ``width``,
            ``batch_size``, ``dtype``, the safety checker and ``max_blank_retries``. The device,
            the attention settings, ``load_kwargs`` and ``progress`` are left out: they change
            the images by rounding at most.
        """
        from failmodes.cache import fingerprint, tensor_digest

        model: Any = self.model
        if not isinstance(model, str):
            cached = getattr(self, "_model_digest", None)
            if cached is None or cached[0] is not model:
                parts: dict[str, Any] = {}
                for name, part in sorted(getattr(model, "components", {}).items()):
                    if isinstance(part, torch.nn.Module):
                        state = {**dict(part.named_parameters()), **dict(part.named_buffers())}
                        parts[name] = tensor_digest(state)
                    elif hasattr(part, "config"):
                        parts[name] = {"class": type(part).__name__, "config": dict(part.config)}
                    elif part is not None:
                        parts[name] = type(part).__name__
                cached = (model, {"pipeline": type(model).__name__, "components": parts})
                self._model_digest = cached
            model = cached[1]
        scheduler = self.scheduler
        if scheduler is not None and not isinstance(scheduler, str):
            config = getattr(scheduler, "config", None)
            scheduler = {
                "class": getattr(scheduler, "__name__", type(scheduler).__name__),
                "config": None if config is None else dict(config),
            }
        checker = self.safety_checker
        if isinstance(checker, torch.nn.Module):
            checker = fingerprint(checker)
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "model": model,
            "revision": self.revision,
            "variant": self.variant,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "scheduler": scheduler,
            "negative_prompt": self.negative_prompt,
            "height": self.height,
            "width": self.width,
            "batch_size": self.batch_size,
            "dtype": None if self.dtype is None else str(self.dtype),
            "safety_checker": checker,
            "max_blank_retries": self.max_blank_retries,
            **{name: getattr(self, name) for name in self._more_params},
        }

    def __repr__(self) -> str:
        def show(value: Any) -> str:
            if value is None or isinstance(value, (str, numbers.Number, torch.dtype, dict)):
                return repr(value)
            if isinstance(value, torch.device):
                return repr(str(value))
            if isinstance(value, type):
                return value.__name__
            return f"<{type(value).__name__}>"

        names = [*_PARAMS, *self._more_params]
        args = ", ".join(f"{name}={show(getattr(self, name))}" for name in names)
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------------------- settings

    def _check_settings(self) -> None:
        self._check_numbers()
        if self.negative_prompt is not None and not isinstance(self.negative_prompt, str):
            raise TypeError(
                f"negative_prompt must be a string or None, got {type(self.negative_prompt)}"
            )
        self._check_scheduler()
        if isinstance(self.model, str):
            if not self.model.strip():
                raise ValueError("model must be a model name, a folder or a pipeline, got ''")
        elif not callable(self.model):
            raise TypeError(
                f"model must be a model name, a folder or a pipeline object, got {self.model!r}"
            )
        if not isinstance(self.safety_checker, (bool, torch.nn.Module)):
            raise TypeError(
                "safety_checker must be True, False or a safety checker module, got "
                f"{self.safety_checker!r}"
            )

    def _check_numbers(self) -> None:
        if not _is_int(self.steps) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        if (
            not isinstance(self.guidance_scale, numbers.Real)
            or isinstance(self.guidance_scale, bool)
            or not self.guidance_scale >= 0
        ):
            raise ValueError(f"guidance_scale must be a number >= 0, got {self.guidance_scale!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 8 or value % 8):
                raise ValueError(f"{name} must be None or a positive multiple of 8, got {value!r}")
        if not _is_int(self.max_blank_retries) or self.max_blank_retries < 0:
            raise ValueError(
                f"max_blank_retries must be an integer >= 0, got {self.max_blank_retries!r}"
            )

    def _check_scheduler(self) -> None:
        scheduler = self.scheduler
        if isinstance(scheduler, str):
            _scheduler_key(scheduler)
        elif isinstance(scheduler, type):
            if not hasattr(scheduler, "from_config"):
                raise TypeError(f"scheduler class {scheduler.__name__} has no from_config")
        elif scheduler is not None and not (
            hasattr(scheduler, "set_timesteps") and hasattr(scheduler, "step")
        ):
            raise TypeError(
                "scheduler must be None, a name, a scheduler class or a scheduler object, got "
                f"{scheduler!r}"
            )

    def _make_scheduler(self, pipe: Any) -> Any:
        """The scheduler asked for, or ``None`` to keep the pipeline's."""
        scheduler = self.scheduler
        if scheduler is None:
            return None
        if isinstance(scheduler, str):
            diffusers = require("diffusers", feature="scheduler names")
            class_name, options = SCHEDULERS[_scheduler_key(scheduler)]
            return getattr(diffusers, class_name).from_config(pipe.scheduler.config, **options)
        if isinstance(scheduler, type):
            return scheduler.from_config(pipe.scheduler.config)
        return scheduler

    # ----------------------------------------------------------------------------- loading

    def load(self) -> Any:
        """Build (or download) and configure the pipeline, once; later calls return it.

        Returns:
            The pipeline in use, also kept in ``pipeline_``.

        Raises:
            ValueError, TypeError: a setting is invalid (the message names it).
            ImportError: diffusers is needed and missing (the message names the extra).
        """
        if hasattr(self, "pipeline_"):
            return self.pipeline_
        self._check_settings()
        device = torch.device(
            self.device
            if self.device is not None
            else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        named = isinstance(self.model, str)
        pipe = self._from_pretrained(device) if named else self._from_object(self.model)
        scheduler = self._make_scheduler(pipe)
        if scheduler is not None:
            pipe.scheduler = scheduler
        if hasattr(pipe, "to"):  # a named model is loaded in its dtype
            dtype = None if named else self.dtype
            pipe = pipe.to(device=device) if dtype is None else pipe.to(device, dtype)
        if self.attention_slicing is not False:
            slice_size = "auto" if self.attention_slicing is True else self.attention_slicing
            pipe.enable_attention_slicing(slice_size)
        if self.enable_xformers:
            require("xformers", feature="enable_xformers=True")
            pipe.enable_xformers_memory_efficient_attention()
        if hasattr(pipe, "set_progress_bar_config"):  # one bar, ours, over images
            pipe.set_progress_bar_config(disable=True)
        self.pipeline_ = pipe
        self.device_ = device
        return pipe

    def _from_pretrained(self, device: torch.device) -> Any:
        diffusers = require("diffusers", feature="StableDiffusionGenerator")
        dtype = self.dtype
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        # diffusers 0.42 takes ``dtype`` and deprecates ``torch_dtype``, which older ones take
        version = tuple(int(x) for x in diffusers.__version__.split(".")[:2])
        dtype_arg = "dtype" if version >= (0, 42) else "torch_dtype"
        kwargs: dict[str, Any] = {dtype_arg: dtype, **(self.load_kwargs or {})}
        if self.revision is not None:
            kwargs["revision"] = self.revision
        if self.variant is not None:
            kwargs["variant"] = self.variant
        if self.safety_checker is False:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        elif self.safety_checker is not True:
            kwargs["safety_checker"] = self.safety_checker
        logger.info("loading %s %r", self._pipeline_class, self.model)
        return getattr(diffusers, self._pipeline_class).from_pretrained(self.model, **kwargs)

    def _from_object(self, pipe: Any) -> Any:
        checker = self.safety_checker
        components = getattr(pipe, "components", None)
        if isinstance(components, dict):  # a diffusers pipeline: run a new one on its parts
            components = dict(components)
            config = getattr(pipe, "config", {})
            if "requires_safety_checker" in config:  # a setting, not a component
                components["requires_safety_checker"] = config["requires_safety_checker"]
            if checker is not True and "safety_checker" in components:
                components["safety_checker"] = None if checker is False else checker
                if checker is False and "requires_safety_checker" in components:
                    components["requires_safety_checker"] = False
            elif checker is not True and checker is not False:
                raise ValueError(
                    f"safety_checker is a module but {type(pipe).__name__} takes no safety checker"
                )
            if (
                components.get("safety_checker") is not None
                and components.get("feature_extractor", True) is None
            ):
                raise ValueError(
                    "the pipeline has a safety checker but no feature_extractor to feed it; give "
                    "it one, or pass safety_checker=False"
                )
            pipe = type(pipe)(**components)
        elif checker is not True:
            raise ValueError(
                f"safety_checker={checker!r} needs a diffusers pipeline; {type(pipe).__name__} "
                "is not one (pass safety_checker=True to use it as it is)"
            )
        return pipe

    # ----------------------------------------------------------------------------- generation

    def generate(
        self, requests: Sequence[GenerationRequest], *, progress: bool | None = None
    ) -> list[list[Image.Image]]:
        """Make ``request.count`` images per request, batching images across requests.

        Args:
            requests: the jobs to run; each image's seed comes from ``request.image_seed(i)``.
            progress: show a progress bar over images; ``None`` keeps the generator's own.

        Returns:
            One list per request, in request order, of exactly ``request.count`` RGB PIL images,
            none of them blank.

        Raises:
            ValueError, TypeError: a setting or a request is invalid (the message names it).
            BlankImageError: an image was still blank after ``max_blank_retries`` new seeds.
            ImportError: diffusers is needed and missing (the message names the extra).
        """
        return self._images(requests, None, progress)

    def _images(
        self,
        requests: Sequence[GenerationRequest],
        sources: Sequence[Sequence[Image.Image]] | None,
        progress: bool | None,
    ) -> list[list[Image.Image]]:
        """The images of every request, batched across requests, blank ones made again."""
        requests = _checked_requests(requests)
        self._check_settings()
        total = sum(r.count for r in requests)
        images: list[list[Image.Image | None]] = [[None] * r.count for r in requests]
        seeds = [[r.image_seed(i) for i in range(r.count)] for r in requests]
        replaced = [0] * len(requests)
        if total:
            self.load()
        bar = progress_bar(
            total=total,
            progress=resolve_progress(progress, self.progress),
            desc="generating",
            unit="image",
        )
        # jobs: (request index, image index, attempt); attempt 0 uses the image seed
        pending = [(k, i, 0) for k, r in enumerate(requests) for i in range(r.count)]
        with bar:
            while pending:
                blank = []
                for start in range(0, len(pending), self.batch_size):
                    batch = pending[start : start + self.batch_size]
                    outputs = self._run(
                        [self._prompt(requests[k]) for k, _, _ in batch],
                        [seeds[k][i] for k, i, _ in batch],
                        None if sources is None else [sources[k][i] for k, i, _ in batch],
                    )
                    for job, (image, is_blank) in zip(batch, outputs, strict=True):
                        if is_blank:
                            blank.append(job)
                        else:
                            images[job[0]][job[1]] = image
                            bar.update()
                pending = [self._retry(requests, seeds, replaced, job) for job in blank]
        self.blank_replaced_ = replaced
        self.seeds_ = seeds
        return images  # type: ignore[return-value]

    def _retry(
        self,
        requests: list[GenerationRequest],
        seeds: list[list[int]],
        replaced: list[int],
        job: tuple[int, int, int],
    ) -> tuple[int, int, int]:
        """The next attempt at a blank image, with a new seed, or a BlankImageError."""
        k, i, attempt = job
        request = requests[k]
        if attempt >= self.max_blank_retries:
            tried = [request.image_seed(i)]
            tried += [replacement_seed(request, i, a) for a in range(1, attempt + 1)]
            raise BlankImageError(request, i, tried)
        if attempt == 0:
            replaced[k] += 1
        old, seeds[k][i] = seeds[k][i], replacement_seed(request, i, attempt + 1)
        logger.info(
            "image %d of %r (%s %r) came out blank with seed %d; regenerating with "
            "seed %d (retry %d of at most %d)",
            i,
            request.class_name,
            request.attribute,
            request.value,
            old,
            seeds[k][i],
            attempt + 1,
            self.max_blank_retries,
        )
        return (k, i, attempt + 1)

    def _prompt(self, request: GenerationRequest) -> str:
        """The text the pipeline is given for ``request``: its prompt."""
        return request.prompt

    def _call_options(self, images: list[Image.Image] | None) -> dict[str, Any]:
        """What a pipeline call takes besides the prompts and seeds: here, the image size."""
        return {"height": self.height, "width": self.width}

    def _run(
        self, prompts: list[str], seeds: list[int], images: list[Image.Image] | None = None
    ) -> list[tuple[Image.Image, bool]]:
        """One pipeline call: an image per prompt, each from its own seed, and whether blank."""
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
        negative = None if self.negative_prompt is None else [self.negative_prompt] * len(prompts)
        out = self.pipeline_(
            prompt=prompts,
            negative_prompt=negative,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            generator=generators,
            output_type="pil",
            **self._call_options(images),
        )
        flags = getattr(out, "nsfw_content_detected", None)
        if flags is None:
            flags = [False] * len(prompts)
        result = []
        for image, flag in zip(out.images, flags, strict=True):
            image = image.convert("RGB")
            result.append((image, bool(flag) or is_blank(image)))
        return result


def _scheduler_key(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in SCHEDULERS:
        raise ValueError(
            f"unknown scheduler {name!r}; known names: {', '.join(SCHEDULERS)} "
            "(or pass a diffusers scheduler class or object)"
        )
    return key


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _checked_requests(requests: Any) -> list[GenerationRequest]:
    """``requests`` as a list, each a request with a count >= 0 and a prompt."""
    if isinstance(requests, GenerationRequest):
        raise TypeError("requests must be a list of requests; wrap a single one in a list")
    requests = list(requests)
    for request in requests:
        if not isinstance(request, GenerationRequest):
            raise TypeError(f"requests must be GenerationRequest objects, got {request!r}")
        if request.count < 0:
            raise ValueError(f"count must be >= 0, got {request.count} for {request}")
        if not isinstance(request.prompt, str) or not request.prompt.strip():
            raise ValueError(f"request has no prompt: {request}")
    return requests
