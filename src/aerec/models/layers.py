"""Shared pieces for the neural models: sparse-input batches and the sparse first layer.

A batch of history rows travels as an embedding-bag (flat item indices, per-row offsets and
per-entry values), so the first layer costs O(nnz x hidden) instead of O(rows x items x hidden),
and only per-batch dense blocks are ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SparseBatch:
    indices: torch.Tensor  # int64 [nnz] item index of each entry
    offsets: torch.Tensor  # int64 [rows] start of each row in indices
    values: torch.Tensor  # float32 [nnz]
    rows: torch.Tensor  # int64 [nnz] row of each entry (for gathers and scatters)
    n_rows: int
    n_cols: int

    @classmethod
    def from_csr(cls, block: sp.csr_matrix, device: str | torch.device = "cpu") -> SparseBatch:
        indptr = block.indptr.astype(np.int64)
        counts = np.diff(indptr)
        return cls(
            indices=torch.from_numpy(block.indices.astype(np.int64)).to(device),
            offsets=torch.from_numpy(indptr[:-1].copy()).to(device),
            values=torch.from_numpy(block.data.astype(np.float32)).to(device),
            rows=torch.from_numpy(np.repeat(np.arange(block.shape[0], dtype=np.int64), counts)).to(device),
            n_rows=block.shape[0],
            n_cols=block.shape[1],
        )

    def with_values(self, values: torch.Tensor) -> SparseBatch:
        return SparseBatch(self.indices, self.offsets, values, self.rows, self.n_rows, self.n_cols)

    def row_counts(self) -> torch.Tensor:
        """Stored entries per row, from the offsets (no bincount: its output size would need a
        device-to-host read on a GPU)."""
        ends = torch.cat([self.offsets[1:], self.offsets.new_full((1,), self.indices.numel())])
        return (ends - self.offsets).to(self.values.dtype)

    def row_sum(self, per_entry: torch.Tensor) -> torch.Tensor:
        """Sum a per-entry quantity within each row."""
        out = torch.zeros(self.n_rows, dtype=per_entry.dtype, device=per_entry.device)
        return out.index_add_(0, self.rows, per_entry)

    def l2_normalized(self) -> SparseBatch:
        """Rows scaled to unit L2 norm; an all-zero row stays zero (no NaN)."""
        norms = self.row_sum(self.values * self.values).sqrt().clamp_min(1e-12)
        return self.with_values(self.values / norms[self.rows])

    def dropout(self, p: float, training: bool) -> SparseBatch:
        """Inverted dropout on the stored entries; identical to dense dropout since zeros stay zero."""
        if not training or p <= 0:
            return self
        keep = (torch.rand_like(self.values) >= p).to(self.values.dtype)
        return self.with_values(self.values * keep / (1.0 - p))

    def gather(self, dense: torch.Tensor) -> torch.Tensor:
        """dense[rows, cols] at the stored entries: outputs at observed items without densifying."""
        return dense[self.rows, self.indices]

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.n_rows, self.n_cols, dtype=self.values.dtype, device=self.values.device)
        out[self.rows, self.indices] = self.values
        return out


class SparseLinear(nn.Module):
    """x @ W + b for sparse rows x, via embedding_bag; weight is [in_features, out_features]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.xavier_uniform_(self.weight)

    def forward(self, batch: SparseBatch) -> torch.Tensor:
        out = F.embedding_bag(batch.indices, self.weight, batch.offsets, mode="sum",
                              per_sample_weights=batch.values)
        return out if self.bias is None else out + self.bias

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight
        return out if self.bias is None else out + self.bias


def multinomial_nll(logits: torch.Tensor, target: SparseBatch) -> torch.Tensor:
    """Per-row  -sum_j x_j log softmax(logits)_j, reading log-probs only at the target entries."""
    log_probs = F.log_softmax(logits, dim=1)
    return -target.row_sum(target.gather(log_probs) * target.values)


def to_device(array: np.ndarray | torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """A host array (or tensor) on ``device``; to a GPU through pinned memory without blocking,
    so the host does not wait for the kernels already queued (a plain ``.to`` waits for them)."""
    t = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    device = torch.device(device)
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class DeviceRows:
    """A CSR matrix held on one device, cut into ``SparseBatch`` row blocks there.

    The matrix moves once (per fit); each batch is then gathered on the device from its row
    indices, so a training step copies nothing from the host and reads nothing back. The batch's
    entry count, which sizes the gather, is computed on the host from the row lengths (the host
    already knows the batch's rows), so no step waits for the device. The batches equal
    ``SparseBatch.from_csr(csr[rows])`` entry for entry.

    ``gather``: build batches by the gather above (default: on every device but the CPU). On the
    CPU, where no copy and no sync is saved, scipy's row slice (a memcpy per row) is 1.5-3x
    faster than torch's element gathers, so the CPU slices; tests force the gather there.
    """

    def __init__(self, csr: sp.csr_matrix, device: str | torch.device = "cpu", gather: bool | None = None):
        self.source = csr
        self.device = torch.device(device)
        self.gather = self.device.type != "cpu" if gather is None else gather
        self.shape = csr.shape
        self.lengths = np.diff(csr.indptr).astype(np.int64)  # host copy: batch sizes without a sync
        if not self.gather:
            return
        to = dict(device=self.device)
        self.indptr = torch.from_numpy(csr.indptr.astype(np.int64)).to(**to)
        self.indices = torch.from_numpy(csr.indices.astype(np.int64)).to(**to)
        self.values = torch.from_numpy(csr.data.astype(np.float32)).to(**to)

    def order(self, rows: np.ndarray) -> torch.Tensor | None:
        """Row indices on the device (one copy for a whole epoch's order; None when slicing)."""
        if not self.gather:
            return None
        return to_device(np.ascontiguousarray(rows, dtype=np.int64), self.device)

    def host_entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(batch row, item) of every entry of the batch ``rows``, on the host, in the batch's
        order: for host-side draws (CDAE's negatives) without reading the device."""
        counts = self.lengths[rows]
        offsets = np.cumsum(counts) - counts
        row_ids = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
        pos = np.arange(int(counts.sum()), dtype=np.int64) + (self.source.indptr[rows].astype(np.int64) - offsets)[row_ids]
        return row_ids, self.source.indices[pos].astype(np.int64)

    def batch(self, rows: np.ndarray, rows_dev: torch.Tensor | None = None) -> SparseBatch:
        """The rows ``rows`` (host indices) as a SparseBatch; ``rows_dev`` is the same indices
        already on the device (a slice of ``order``), else they are copied."""
        if not self.gather:
            return SparseBatch.from_csr(self.source[rows], self.device)
        counts = self.lengths[rows]
        nnz = int(counts.sum())
        r = self.order(rows) if rows_dev is None else rows_dev
        n = len(rows)
        # index_select throughout: on CPU it is several times faster than advanced indexing
        starts = self.indptr.index_select(0, r)
        dev_counts = self.indptr.index_select(0, r + 1) - starts
        offsets = torch.cumsum(dev_counts, 0) - dev_counts
        row_ids = torch.repeat_interleave(torch.arange(n, device=self.device), dev_counts, output_size=nnz)
        # entry e of the batch sits at indptr[row] + (e - offsets[row]) in the whole matrix
        pos = torch.arange(nnz, device=self.device) + (starts - offsets).index_select(0, row_ids)
        return SparseBatch(indices=self.indices.index_select(0, pos), offsets=offsets,
                           values=self.values.index_select(0, pos), rows=row_ids,
                           n_rows=n, n_cols=self.shape[1])


def pad_entries(batch: SparseBatch, bits: int = 4) -> SparseBatch:
    """``batch`` with zero-valued entries (item 0, in the last row) appended up to a round entry
    count: a multiple of 2^(bit_length(nnz) - bits), so at most 1 / 2^(bits - 1) more entries.

    Where every entry counts through its value (the embedding-bag sum, the L2 norm, dropout, the
    multinomial NLL), a zero entry changes no number. A compiled step then sees a few shapes
    instead of one per batch, so CUDA graphs are replayed rather than recorded again."""
    nnz = batch.indices.numel()
    step = 1 << max(nnz.bit_length() - bits, 0)
    extra = -(-nnz // step) * step - nnz
    if extra == 0 or batch.n_rows == 0:
        return batch
    fill = lambda value, like: torch.full((extra,), value, dtype=like.dtype, device=like.device)  # noqa: E731
    return SparseBatch(indices=torch.cat([batch.indices, fill(0, batch.indices)]), offsets=batch.offsets,
                       values=torch.cat([batch.values, fill(0, batch.values)]),
                       rows=torch.cat([batch.rows, fill(batch.n_rows - 1, batch.rows)]),
                       n_rows=batch.n_rows, n_cols=batch.n_cols)


def batch_order(n_rows: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Row index chunks of size batch_size, shuffled when rng is given; the last one may be short."""
    order = rng.permutation(n_rows) if rng is not None else np.arange(n_rows)
    return [order[i : i + batch_size] for i in range(0, n_rows, batch_size)]
