"""One intra-op thread for torch in these tests: the CI box has 2 cores shared by several jobs, and OpenMP
threads spinning on an oversubscribed machine slow small models down by orders of magnitude."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
