"""Benchmark: Stable Diffusion 1.5 generation throughput of ``StableDiffusionGenerator``.

The pipeline has SD 1.5's exact architecture, built from its configuration (written out below)
with RANDOM weights, so nothing is downloaded and the images are noise; the compute per image is
the real model's: the UNet (860M parameters, cross-attention width 768), the VAE, CLIP ViT-L/14's
text encoder (123M) and, unless ``--no-safety-checker``, a safety checker of CLIP ViT-L/14's
vision tower (random weights, which never flag an image). The tokenizer is CLIP's real BPE
(from open_clip's copy), so the text encoder sees real token ids.

Each configuration (scheduler, steps, batch size) times ``StableDiffusionGenerator.generate``
end to end (text encoding, denoising with classifier-free guidance at scale 7.5, VAE decoding,
safety checker, PIL conversion) on ``--repeats`` batches of ``batch_size`` images at 512x512,
after a warm-up of two steps at that batch size, with ``torch.cuda.synchronize()`` around the
clock. It prints one JSON line per configuration on stdout (progress on stderr): ``images_per_s``,
``s_per_image``, ``unet_it_per_s`` (denoising steps per second of one batch) and ``peak_mem_gib``
(``torch.cuda.max_memory_allocated`` during the configuration). A configuration whose estimated
time (from the measured ones) would take the run past ``--max-seconds`` since the start is
skipped, with a ``"skipped"`` line; configurations run in priority order: the paper's setting
(PNDM, 50 steps) first, then DPM-Solver++ at 25 steps, then the others.

Run by hand (not in CI)::

    python benchmarks/gpu_generation.py --tiny            # CPU smoke test: tiny pipeline, seconds
    python benchmarks/gpu_generation.py > gpu_generation.jsonl            # GPU, fp16, ~7 minutes
    python benchmarks/gpu_generation.py --batch-sizes 8,16 --steps 25 --schedulers dpm++

The GPU run needs the ``diffusion`` and ``clip`` extras (open_clip for the BPE file); building
the random-weight models on the GPU takes seconds. ``--max-seconds`` (default 420) bounds the
run from the start of the script, so with Python's start-up it fits in about 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from typing import Any

import torch

from failmodes.generators import BlankImageError, StableDiffusionGenerator
from failmodes.interfaces import GenerationRequest

# the configurations of stable-diffusion-v1-5/stable-diffusion-v1-5 (unet/, vae/, text_encoder/,
# scheduler/ and safety_checker/ config.json), without the fields that only name classes
SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SD15_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
}
SD15_TEXT = {  # CLIP ViT-L/14's text tower
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}
SD15_SCHEDULER = {  # PNDMScheduler (the file's "clip_sample": false is not one of its arguments)
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}
SD15_SAFETY_VISION = {  # CLIP ViT-L/14's vision tower
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}

log = logging.getLogger("gpu_generation")


def build_sd15(device: torch.device, dtype: torch.dtype, safety_checker: bool) -> Any:
    """SD 1.5's pipeline with random weights, made directly on ``device``."""
    import diffusers
    import transformers

    from failmodes.testing.tiny import clip_tokenizer

    torch.manual_seed(0)
    with torch.device(device):
        unet = diffusers.UNet2DConditionModel(**SD15_UNET)
        vae = diffusers.AutoencoderKL(**SD15_VAE)
        text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(**SD15_TEXT))
        checker = feature_extractor = None
        if safety_checker:
            config = transformers.CLIPConfig(
                text_config=SD15_TEXT, vision_config=SD15_SAFETY_VISION, projection_dim=768
            )
            checker = diffusers.pipelines.stable_diffusion.StableDiffusionSafetyChecker(config)
            feature_extractor = transformers.CLIPImageProcessor()  # CLIP's 224x224 transform
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=clip_tokenizer(),
        unet=unet.eval(),
        scheduler=diffusers.PNDMScheduler(**SD15_SCHEDULER),
        safety_checker=None if checker is None else checker.eval(),
        feature_extractor=feature_extractor,
        requires_safety_checker=False,
    )
    return pipe.to(device, dtype)


def build_tiny(safety_checker: bool) -> Any:
    from failmodes.testing.tiny import TinySafetyChecker, tiny_stable_diffusion

    checker = TinySafetyChecker(blank=lambda image: False) if safety_checker else None
    return tiny_stable_diffusion(seed=0, safety_checker=checker)


def parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test pipeline on the CPU")
    parser.add_argument("--batch-sizes", type=ints, default=None, help="default 1,2,4,8,16")
    parser.add_argument("--steps", type=ints, default=None, help="default 50,25 (tiny: 4,2)")
    parser.add_argument("--schedulers", type=names, default=["pndm", "dpm++"])
    parser.add_argument("--repeats", type=int, default=1, help="timed batches per config")
    parser.add_argument("--max-seconds", type=float, default=420.0)
    parser.add_argument("--device", default=None, help="default cuda (tiny: cpu)")
    parser.add_argument("--dtype", default=None, help="float16 or float32 (default: fp16 on GPU)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 512; tiny 64)")
    parser.add_argument("--safety-checker", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (tiny: 1)")
    parser.add_argument(
        "--editors",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the two editors (image-to-image, InstructPix2Pix) after text-to-image",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    start = time.perf_counter()
    threads = args.threads or (1 if args.tiny else None)
    if threads:
        torch.set_num_threads(threads)

    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device; use --tiny for a CPU smoke test, or --device cpu")
    dtype_name = args.dtype or ("float16" if device.type == "cuda" else "float32")
    dtype = getattr(torch, dtype_name)
    batch_sizes = args.batch_sizes or ([1, 2, 4] if args.tiny else [1, 2, 4, 8, 16])
    steps_list = args.steps or ([4, 2] if args.tiny else [50, 25])
    size = args.size or (64 if args.tiny else 512)

    pipe = build_tiny(args.safety_checker) if args.tiny else None
    if pipe is None:
        pipe = build_sd15(device, dtype, args.safety_checker)
    pipe = pipe.to(device, dtype)
    sync(device)
    import diffusers

    setup = {
        "kind": "setup",
        "model": "tiny" if args.tiny else "sd15-architecture-random-weights",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": dtype_name,
        "size": size,
        "safety_checker": args.safety_checker,
        "params_unet": parameters(pipe.unet),
        "params_vae": parameters(pipe.vae),
        "params_text_encoder": parameters(pipe.text_encoder),
        "params_safety_checker": parameters(pipe.safety_checker),
        "build_s": round(time.perf_counter() - start, 2),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "max_seconds": args.max_seconds,
    }
    print(json.dumps(setup), flush=True)

    # priority order: the paper's setting (PNDM, most steps) first, then the fast one
    first, *rest = args.schedulers
    order: list[tuple[str, int]] = [(first, max(steps_list))]
    if rest:
        order.append((rest[0], min(steps_list)))
    order += [(s, n) for s in args.schedulers for n in steps_list if (s, n) not in order]
    configs = [(s, n, b) for s, n in order for b in batch_sizes]

    warm: set[int] = set()
    rates: dict[int, float] = {}  # batch size -> seconds per image-step, measured
    request_seed = 0
    for scheduler, steps, batch in configs:
        images = batch * args.repeats
        # estimate: the rate at this batch size, else at the largest smaller one measured (a
        # smaller batch is slower per image, so the estimate errs long), plus the warm-up
        known = [b for b in rates if b <= batch] or list(rates)
        estimate = 0.0
        if known:
            rate = rates[max(known)]
            estimate = rate * images * steps + (0 if batch in warm else rate * batch * 2)
        elapsed = time.perf_counter() - start
        config = {"scheduler": scheduler, "steps": steps, "batch_size": batch}
        if elapsed + estimate > args.max_seconds:
            reason = (
                f"{elapsed:.1f}s elapsed + {estimate:.1f}s estimated > --max-seconds "
                f"{args.max_seconds:g}"
            )
            print(json.dumps({"kind": "skipped", **config, "reason": reason}), flush=True)
            continue
        settings = {
            "scheduler": scheduler,
            "batch_size": batch,
            "height": size,
            "width": size,
            "device": device,
            "safety_checker": True,
            "progress": False,
        }
        try:
            if batch not in warm:  # kernels are chosen per shape
                log.info("warm-up: batch %d", batch)
                gen = StableDiffusionGenerator(pipe, steps=2, **settings)
                gen.generate([GenerationRequest(0, "fox", None, "a fox", batch, 0)])
                warm.add(batch)
            gen = StableDiffusionGenerator(pipe, steps=steps, **settings)
            request_seed += 1
            request = GenerationRequest(
                0, "fox", "in a desert", "a photo of a fox in a desert", images, request_seed
            )
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            t0 = time.perf_counter()
            out = gen.generate([request])
            sync(device)
            seconds = time.perf_counter() - t0
        except torch.cuda.OutOfMemoryError as err:
            print(json.dumps({"kind": "error", **config, "error": f"OOM: {err}"[:300]}))
            torch.cuda.empty_cache()
            continue
        except BlankImageError as err:  # random weights overflowing in fp16 would end here
            print(json.dumps({"kind": "error", **config, "error": str(err)[:300]}))
            continue
        assert len(out[0]) == images
        rates[batch] = seconds / (images * steps)
        result = {
            "kind": "result",
            **config,
            "repeats": args.repeats,
            "images": images,
            "seconds": round(seconds, 3),
            "images_per_s": round(images / seconds, 3),
            "s_per_image": round(seconds / images, 3),
            "unet_it_per_s": round(steps * args.repeats / seconds, 2),
            "peak_mem_gib": (
                round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                if device.type == "cuda"
                else None
            ),
            "scheduler_class": type(gen.pipeline_.scheduler).__name__,
            "dtype": dtype_name,
            "size": size,
            "blank_replaced": gen.blank_replaced_[0],
        }
        print(json.dumps(result), flush=True)
        log.info("%s %d steps batch %d: %.2f images/s", scheduler, steps, batch, images / seconds)
    if args.editors:
        editors = build_editors(pipe, args.tiny, device, dtype)
        time_editors(editors, device, size, max(steps_list), batch_sizes, start, args.max_seconds)
    total = round(time.perf_counter() - start, 1)
    print(json.dumps({"kind": "done", "total_s": total}), flush=True)
    return 0


def build_editors(pipe: Any, tiny: bool, device: torch.device, dtype: torch.dtype) -> dict:
    """The image-to-image pipeline on ``pipe``'s components, and InstructPix2Pix's (its UNet
    reads the source's latents too: 8 input channels, random weights)."""
    import diffusers

    from failmodes.generators import InstructPix2PixGenerator, StableDiffusionImg2ImgGenerator

    parts = dict(pipe.components)
    parts.pop("image_encoder", None)
    img2img = diffusers.StableDiffusionImg2ImgPipeline(**parts)
    if tiny:
        from failmodes.testing.tiny import tiny_instruct_pix2pix

        pix2pix = tiny_instruct_pix2pix(seed=0)
    else:
        torch.manual_seed(1)
        with torch.device(device):
            unet = diffusers.UNet2DConditionModel(**{**SD15_UNET, "in_channels": 8})
        pix2pix = diffusers.StableDiffusionInstructPix2PixPipeline(**{**parts, "unet": unet.eval()})
    return {
        "img2img": (StableDiffusionImg2ImgGenerator, img2img.to(device, dtype)),
        "instruct-pix2pix": (InstructPix2PixGenerator, pix2pix.to(device, dtype)),
    }


def time_editors(
    editors: dict,
    device: torch.device,
    size: int,
    steps: int,
    batch_sizes: list[int],
    start: float,
    max_seconds: float,
) -> None:
    """One JSON line per editor and batch size: edits per second at ``steps``."""
    from PIL import Image

    source = Image.effect_noise((size, size), 40).convert("RGB")
    for name, (kind, editor_pipe) in editors.items():
        for batch in batch_sizes:
            if time.perf_counter() - start > max_seconds:
                print(json.dumps({"kind": "skipped", "editor": name, "batch_size": batch}))
                continue
            editor = kind(editor_pipe, steps=steps, batch_size=batch, device=device, progress=False)
            request = GenerationRequest(
                0,
                "fox",
                "in a desert",
                "a photo of a fox in a desert",
                batch,
                1,
                sources=tuple(range(batch)),
            )
            editor.edit([request], [[source] * batch])  # warm-up: kernels per shape
            sync(device)
            t0 = time.perf_counter()
            out = editor.edit([request], [[source] * batch])
            sync(device)
            seconds = time.perf_counter() - t0
            assert len(out[0]) == batch
            print(
                json.dumps(
                    {
                        "kind": "editor",
                        "editor": name,
                        "steps": steps,
                        "batch_size": batch,
                        "seconds": round(seconds, 3),
                        "images_per_s": round(batch / seconds, 3),
                        "size": size,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
