"""RayEngine on a real local Ray cluster: the same results as LocalEngine, in the jobs' order.

The cluster is started by the tests on loopback, with more logical CPUs than the workers need
(Ray Data can hang when actors take every CPU), and a temporary folder of its own. The cache
the workers share is a folder, a ``file://`` URL, or a bucket of a local S3-compatible server
(moto's), which the tests start on loopback.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import uuid

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("open_clip")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from failmodes import Debugger, GenerationRequest, ImageGenerator, TorchExtractor  # noqa: E402
from failmodes.cache import Cache, fingerprint  # noqa: E402
from failmodes.engines import LocalEngine, RayEngine, using  # noqa: E402
from failmodes.steps import extract_features, generate  # noqa: E402
from failmodes.toyworld import ToyWorld, ToyWorldGenerator, demo_components  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are limited
    ray.init(num_cpus=8, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_results_come_back_in_the_jobs_order_even_after_a_worker_dies(cluster, tmp_path):
    marker = tmp_path / "crashed"

    def square_after_a_crash(job: int) -> int:  # a closure: shipped by value to the workers
        if job == 3 and not marker.exists():
            marker.write_text("crashed once")
            os._exit(1)  # the worker process dies in the middle of its job
        return job * job

    assert RayEngine(workers=2).map(square_after_a_crash, list(range(8))) == [
        j * j for j in range(8)
    ]
    assert marker.exists()  # a worker did die, and its job was run again


@pytest.mark.slow
def test_jobs_in_blocks_of_batch_size_come_back_whole_and_in_order(cluster, tmp_path):
    marker = tmp_path / "crashed"

    def cube_after_a_crash(job: int) -> int:
        if job == 5 and not marker.exists():
            marker.write_text("crashed once")
            os._exit(1)  # the worker dies with its block of three jobs unfinished
        return job**3

    assert RayEngine(workers=2, batch_size=3).map(cube_after_a_crash, list(range(11))) == [
        j**3 for j in range(11)
    ]
    assert marker.exists()


@pytest.fixture(scope="module")
def s3():
    """A bucket on a local S3-compatible server (moto's), as cache storage options."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {"key": "testing", "secret": "testing", "endpoint_url": f"http://127.0.0.1:{port}"}
    import s3fs

    s3fs.S3FileSystem(**options).mkdir("failmodes-test")
    yield options
    server.stop()


def _small_run(cache, engine, world, generator=None, **changes):
    train, debug, test = world.train(20), world.debug(600), world.test(300)
    settings = demo_components(
        world, cache=cache, train=train, k=[1, 2], lam=[0.5, 1.0], images_per_mode=[5], **changes
    )
    if generator is not None:
        settings["generator"] = generator
    summary = Debugger(**settings, engine=engine).run(train, debug, test, seed=0).summary()
    summary.pop("seconds")
    for key in ("cache", "engine", "generator"):  # the generator: the renderer or a subclass
        summary["config"].pop(key)
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("store", ["folder", "file-url", "s3"])
def test_a_run_on_ray_equals_a_local_run(cluster, tmp_path, store, request):
    world = ToyWorld(seed=7)
    local = _small_run(tmp_path / "local", LocalEngine(), world)
    if store == "folder":
        cache = Cache(tmp_path / "ray")
    elif store == "file-url":
        cache = Cache((tmp_path / "ray").as_uri())
    else:
        cache = Cache(
            f"s3://failmodes-test/{uuid.uuid4().hex}", storage_options=request.getfixturevalue("s3")
        )
    assert _small_run(cache, RayEngine(workers=2), world) == local
    kinds = cache.info()["kinds"]
    assert kinds["generated"]["entries"] > 0 and kinds["feature-parts"]["entries"] > 0
    assert cache.verify() == []
    if store != "folder":  # what the workers wrote, the driver reads back: nothing is redone
        recording = _recording_generator(world, tmp_path / "asked")
        assert _small_run(cache, LocalEngine(), world, recording) == local
        assert not (tmp_path / "asked").exists()


@pytest.mark.slow
def test_train_shards_written_by_workers_fit_as_they_do_here(cluster, tmp_path):
    world = ToyWorld(seed=7)
    changes = {"train_shards": True, "checkpoint_every": 128}
    local = _small_run(tmp_path / "local", LocalEngine(), world, **changes)
    cache = Cache((tmp_path / "ray").as_uri())
    assert _small_run(cache, RayEngine(workers=2), world, **changes) == local
    assert cache.info()["kinds"]["feature-parts"]["entries"] > 1


def _recording_generator(world, log, fail_after=None, crash_marker=None):
    """ToyWorld's renderer that writes each request it is asked for into ``log``, fails on its
    call after the first ``fail_after`` (each job is one call), and ends its process in the
    middle of its first job when ``crash_marker`` is given and missing. Defined in a function,
    so Ray ships it by value.
    """

    class RecordingGenerator(ToyWorldGenerator):
        def cache_key(self):  # the renderer's own key: its images are the renderer's
            return fingerprint(ToyWorldGenerator(world))

        def generate(self, requests, *, progress=None):
            log.mkdir(parents=True, exist_ok=True)
            if crash_marker is not None and not crash_marker.exists():
                crash_marker.write_text("a worker died here")
                os._exit(1)  # the actor's process exits in the middle of a generation job
            if fail_after is not None:
                calls = log.parent / f"{log.name}-calls"
                calls.mkdir(exist_ok=True)
                if len(list(calls.iterdir())) >= fail_after:
                    raise RuntimeError("the worker lost its GPU in the middle of the run")
                (calls / uuid.uuid4().hex).touch()
            for r in requests:
                (log / uuid.uuid4().hex).write_text(json.dumps(r.identity()))
            return super().generate(requests, progress=progress)

    return RecordingGenerator(world)


@pytest.mark.slow
def test_a_stopped_run_on_ray_skips_every_finished_job_when_started_again(cluster, tmp_path):
    world = ToyWorld(seed=7)
    cache = Cache((tmp_path / "cache").as_uri())
    # One worker, which fails on its third generation job: the two before it are finished and
    # committed when the run stops (with two workers, a job beside the failing one may still be
    # running, and commit its entry after the run has stopped).
    failing = _recording_generator(world, tmp_path / "a", fail_after=2)
    with pytest.raises(Exception, match="lost its GPU"):
        _small_run(cache, RayEngine(workers=1), world, failing)
    key_of = fingerprint(ToyWorldGenerator(world))
    finished = {e.key for e in cache.entries() if e.kind == "generated"}
    assert finished  # some jobs were done before the run stopped
    resumed = _small_run(
        cache, RayEngine(workers=2), world, _recording_generator(world, tmp_path / "b")
    )
    asked = [json.loads(p.read_text()) for p in (tmp_path / "b").iterdir()]
    asked_keys = {cache.key("generated", {"generator": key_of, "request": r}) for r in asked}
    assert asked and not asked_keys & finished  # nothing finished is asked again
    everything = {e.key for e in cache.entries() if e.kind == "generated"}
    assert everything == finished | asked_keys
    assert resumed == _small_run(tmp_path / "local", LocalEngine(), world)


@pytest.mark.slow
def test_a_worker_killed_mid_generation_costs_only_its_job(cluster, tmp_path):
    world = ToyWorld(seed=7)
    marker = tmp_path / "crashed"
    crashing = _recording_generator(world, tmp_path / "asked", crash_marker=marker)
    summary = _small_run(tmp_path / "ray", RayEngine(workers=2), world, crashing)
    assert marker.exists()  # a worker did die, and its job was run again elsewhere
    assert summary == _small_run(tmp_path / "local", LocalEngine(), world)


def _pid_components(model):
    """An extractor and a generator of the test's own that record the process they ran in.

    Made in a function, so that Ray ships the classes by value to its workers.
    """

    class PidExtractor(TorchExtractor):  # the second feature: the process that computed it
        def extract(self, data, *, batch_size=None, progress=None):
            features = super().extract(data, batch_size=batch_size, progress=progress)
            pid = torch.full((len(features),), float(os.getpid()))
            return torch.stack([features[:, 0], pid], 1)

    class PidGenerator(ImageGenerator):  # the process that made each image, in its pixels
        def generate(self, requests, *, progress=None):
            pid = os.getpid()
            pixels = np.zeros((4, 4, 3), dtype=np.uint8)
            pixels[0, 0] = [(pid >> 16) & 255, (pid >> 8) & 255, pid & 255]
            pixels[1:] = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)  # never one flat colour
            return [[Image.fromarray(pixels) for _ in range(r.count)] for r in requests]

    return PidExtractor(model), PidGenerator()


def _pid_of(image) -> int:
    r, g, b = np.asarray(image)[0, 0].tolist()
    return (r << 16) | (g << 8) | b


@pytest.mark.slow
def test_without_a_cache_extraction_and_generation_run_on_the_workers(cluster):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    data = [(torch.rand(3, 2, 2), i % 2) for i in range(40)]
    requests = [
        GenerationRequest(0, "fox", "at sea", "a photo of a fox at sea", 30, seed=s)
        for s in range(4)
    ]
    extractor, generator = _pid_components(model)
    with using(RayEngine(workers=2)):
        features = extract_features(extractor, data, cache=None, checkpoint_every=10)
        made = generate(generator, requests, class_names=["fox"], cache=None)
    feature_pids = set(features.features[:, 1].int().tolist())
    image_pids = {_pid_of(image) for image in made.images}
    assert os.getpid() not in feature_pids | image_pids  # nothing ran in this process
    assert len(made) == 120 and feature_pids and image_pids
