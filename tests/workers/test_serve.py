"""What `workers serve` sets up before the engine runs."""

from __future__ import annotations

from threadpoolctl import threadpool_info

from workers.serve import single_threaded_numpy


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_a_worker_keeps_numpys_blas_to_one_thread() -> None:
    limiter = single_threaded_numpy()
    try:
        assert blas_threads() == {1}
    finally:
        limiter.restore_original_limits()
