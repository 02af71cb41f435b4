"""PyTorch adapter (torch stays optional: only this module imports it).

    from syllabus_loader.torch import Dataset, DataLoader

    ds = Dataset("out/quickstart", rank, world_size, batch_size=8)
    dl = DataLoader(ds, num_workers=2, pin_memory=True)
    for batch in dl:               # tensors: tokens int64 [batch_size, seq_len], weights, domains, index
        ...
        state = dl.state_dict()    # the exact next batch, whatever the workers had prefetched

Workers split the rank's batches round-robin (worker w takes batches w, w + W, ...), which is
the order in which DataLoader hands them back, so the batch order is the loader's. Tokens are
widened to int64 (embedding lookups want it; the shared memory holds uint16/uint32).
"""

try:
    import torch
    import torch.utils.data
except ImportError as e:
    raise ImportError("syllabus_loader.torch needs PyTorch (pip install torch); the rest of "
                      "syllabus_loader works without it") from e

from . import Loader

__all__ = ["Dataset", "DataLoader", "to_tensors"]


def to_tensors(batch, pin_memory=False, device=None):
    out = {
        "tokens": torch.from_numpy(batch["tokens"].astype("int64")),
        "weights": torch.from_numpy(batch["weights"].copy()),
        "domains": torch.from_numpy(batch["domains"].astype("int64")),
        "index": torch.from_numpy(batch["index"]),
        "step": batch["step"],
    }
    if pin_memory:
        out = {k: v.pin_memory() if torch.is_tensor(v) else v for k, v in out.items()}
    if device is not None:
        out = {k: v.to(device, non_blocking=pin_memory) if torch.is_tensor(v) else v for k, v in out.items()}
    return out


class Dataset(torch.utils.data.IterableDataset):
    """One rank's batches as tensors; each DataLoader worker attaches on its own."""

    def __init__(self, path_or_name, rank, world_size, batch_size, **loader_kwargs):
        super().__init__()
        self.args = (path_or_name, rank, world_size, batch_size)
        self.kwargs = loader_kwargs
        self.state = None

    def loader(self, reporting=False):
        """A loader at the dataset's state. Only the DataLoader's own loader reports: the ones
        that read batches (in workers, or in the main process) must not wait for their own
        reports."""
        kwargs = dict(self.kwargs) if reporting else dict(self.kwargs, reporting_rank=-1)
        ld = Loader(*self.args, **kwargs)
        if self.state is not None:
            ld.load_state_dict(self.state)
        return ld

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        stride, offset = (info.num_workers, info.id) if info is not None else (1, 0)
        ld = self.loader()
        try:
            for b in ld.batches(stride, offset):
                yield to_tensors(b)
        finally:
            ld.close()


class DataLoader(torch.utils.data.DataLoader):
    """torch's DataLoader over a Dataset, with state_dict()/load_state_dict() that count what
    the training loop received, and report() through a loader of its own."""

    def __init__(self, dataset, **kwargs):
        kwargs.setdefault("batch_size", None)
        if kwargs["batch_size"] is not None:
            raise ValueError("batches come from syllabus: leave batch_size to the Dataset")
        super().__init__(dataset, **kwargs)
        self._main = dataset.loader(reporting=True)
        if dataset.state is not None:
            self._main.load_state_dict(dataset.state)

    def __iter__(self):
        self.dataset.state = self._main.state_dict()
        for batch in super().__iter__():
            # Keep the main loader's state in step with what was handed out.
            self._main._pass, self._main._batch = divmod(batch["step"] + 1, self._main.batches_per_pass)
            yield batch

    def state_dict(self):
        return self._main.state_dict()

    def load_state_dict(self, state):
        self._main.load_state_dict(state)
        self.dataset.state = state

    def report(self, domain_stats, **kwargs):
        return self._main.report(domain_stats, **kwargs)
