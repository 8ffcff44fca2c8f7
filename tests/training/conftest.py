"""The training tests run numpy's BLAS on one thread, as the training job does: on the shared 2-core
machine two OpenBLAS threads spin-wait on each other (the logistic baseline took 3.3 s instead of 0.7 s)."""

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield
