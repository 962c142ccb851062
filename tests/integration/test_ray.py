"""RayEngine on a real local Ray cluster: the same results as LocalEngine, in the jobs' order.

The cluster is started by the tests on loopback, with more logical CPUs than the workers need
(Ray Data can hang when actors take every CPU), and a temporary folder of its own.
"""

from __future__ import annotations

import os
import tempfile

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("open_clip")

from failmodes import Debugger  # noqa: E402
from failmodes.engines import LocalEngine, RayEngine  # noqa: E402
from failmodes.toyworld import ToyWorld, demo_components  # noqa: E402


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
def test_a_run_on_ray_equals_a_local_run(cluster, tmp_path):
    world = ToyWorld(seed=7)
    train, debug, test = world.train(20), world.debug(600), world.test(300)
    summaries = {}
    for name, engine in (("local", LocalEngine()), ("ray", RayEngine(workers=2))):
        settings = demo_components(world, cache=tmp_path / name, train=train, k=[1, 2],
                                   lam=[0.5, 1.0], images_per_mode=[5])  # fmt: skip
        summary = Debugger(**settings, engine=engine).run(train, debug, test, seed=0).summary()
        summary.pop("seconds")
        for key in ("cache", "engine"):
            summary["config"].pop(key)
        summaries[name] = summary
    assert summaries["ray"] == summaries["local"]
