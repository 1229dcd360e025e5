import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread(request):
    """Two shared cores: torch's thread pool spinning against other processes costs 10x. Only for
    the modules that train (they import torch)."""
    torch = request.module.__dict__.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
