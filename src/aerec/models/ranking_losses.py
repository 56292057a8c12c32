"""Ranking losses on an autoencoder's dense per-batch logits and the batch's sparse positives.

- ``warp_loss``: WARP (Weston, Bengio and Usunier, "WSABIE", IJCAI 2011). For each positive,
  negatives are drawn until one violates the margin; the hinge on that violator is weighted by
  L(rank estimate) with L(k) = sum_{j<=k} 1/j and rank estimate floor(#negatives / #draws).
  Vectorized: a fixed number of draws per positive, the first violator among them is taken.
- ``lambdarank_loss``: the pairwise logistic loss log(1 + exp(-(s_pos - s_neg))) weighted by
  |delta NDCG| of swapping the two items in the current ranking (Burges et al. 2006), on
  sampled negatives, rescaled to estimate the sum over all negatives.

A positive is every stored entry of the target rows (binary gains). Both losses return one value
per row (sum over the row's positives); the rank weights are constants (no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aerec.models.layers import SparseBatch


def harmonic(k: torch.Tensor) -> torch.Tensor:
    """WARP's rank weight L(k) = sum_{j=1..k} 1/j elementwise (L(0) = 0)."""
    k = k.long()
    top = int(k.max()) if k.numel() else 0
    steps = 1.0 / torch.arange(1, top + 1, dtype=torch.float64, device=k.device)
    table = torch.cat([torch.zeros(1, dtype=torch.float64, device=k.device), steps.cumsum(0)])
    return table[k].float()


def positive_mask(target: SparseBatch) -> torch.Tensor:
    """Dense bool [rows, items] of the stored entries (a per-batch block)."""
    mask = torch.zeros(target.n_rows, target.n_cols, dtype=torch.bool, device=target.indices.device)
    mask[target.rows, target.indices] = True
    return mask


def sample_negatives(target: SparseBatch, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n items uniformly per positive; (candidates [nnz, n], valid = not a positive of the row)."""
    cand = torch.randint(0, target.n_cols, (target.indices.numel(), n), device=target.indices.device)
    valid = ~positive_mask(target)[target.rows.unsqueeze(1), cand]
    return cand, valid


def _negatives_per_entry(target: SparseBatch) -> torch.Tensor:
    return target.n_cols - target.row_counts()[target.rows]


def warp_from_candidates(logits: torch.Tensor, target: SparseBatch, cand: torch.Tensor, valid: torch.Tensor,
                         margin: float = 1.0) -> torch.Tensor:
    """WARP per row given the drawn negatives (in draw order) of every positive."""
    s_pos = target.gather(logits)
    s_neg = logits[target.rows.unsqueeze(1), cand]
    violates = valid & (s_neg > (s_pos - margin).unsqueeze(1))
    first = violates.to(torch.uint8).argmax(dim=1, keepdim=True)  # first True; 0 when none
    found = violates.any(dim=1)
    draws = valid.long().cumsum(dim=1).gather(1, first).squeeze(1).clamp_min(1)  # negatives drawn
    rank_est = torch.div(_negatives_per_entry(target).long(), draws, rounding_mode="floor")
    weight = harmonic(rank_est) * found
    hinge = F.relu(margin - s_pos + s_neg.gather(1, first).squeeze(1))
    return target.row_sum(weight.to(logits.dtype) * hinge)


def warp_loss(logits: torch.Tensor, target: SparseBatch, n_negatives: int = 100, margin: float = 1.0) -> torch.Tensor:
    cand, valid = sample_negatives(target, n_negatives)
    return warp_from_candidates(logits, target, cand, valid, margin)


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """1-based rank of every item in its row's descending order (ties broken by item index)."""
    order = torch.argsort(scores.detach(), dim=1, descending=True, stable=True)
    out = torch.empty_like(order)
    pos = torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order)
    return out.scatter_(1, order, pos)


def ideal_dcg(n_pos: torch.Tensor) -> torch.Tensor:
    """IDCG of n binary positives over the whole list (no cut-off, as the reference LambdaRank)."""
    n_pos = n_pos.long()
    top = int(n_pos.max()) if n_pos.numel() else 0
    disc = 1.0 / torch.log2(torch.arange(2, top + 2, dtype=torch.float64, device=n_pos.device))
    return torch.cat([torch.zeros(1, dtype=torch.float64, device=n_pos.device), disc.cumsum(0)])[n_pos].float()


def swap_delta_ndcg(rank_pos: torch.Tensor, rank_neg: torch.Tensor, n_pos: torch.Tensor) -> torch.Tensor:
    """|NDCG change| when a positive at rank_pos and a negative at rank_neg trade places."""
    gain = lambda r: 1.0 / torch.log2(1.0 + r.double())  # noqa: E731
    return ((gain(rank_pos) - gain(rank_neg)).abs() / ideal_dcg(n_pos).double().clamp_min(1e-12)).float()


def lambdarank_from_candidates(logits: torch.Tensor, target: SparseBatch, cand: torch.Tensor,
                               valid: torch.Tensor) -> torch.Tensor:
    """LambdaRank-weighted pairwise logistic loss per row, given each positive's drawn negatives."""
    r = ranks(logits)
    s_pos = target.gather(logits).unsqueeze(1)
    s_neg = logits[target.rows.unsqueeze(1), cand]
    n_pos = target.row_counts()[target.rows].unsqueeze(1)
    delta = swap_delta_ndcg(target.gather(r).unsqueeze(1), r[target.rows.unsqueeze(1), cand], n_pos)
    pair = F.softplus(s_neg - s_pos) * (delta * valid).to(logits.dtype)
    # mean over the valid draws times the number of negatives: an unbiased estimate of the full sum
    scale = _negatives_per_entry(target) / valid.sum(dim=1).clamp_min(1)
    return target.row_sum(pair.sum(dim=1) * scale.to(logits.dtype))


def lambdarank_loss(logits: torch.Tensor, target: SparseBatch, n_negatives: int = 100) -> torch.Tensor:
    cand, valid = sample_negatives(target, n_negatives)
    return lambdarank_from_candidates(logits, target, cand, valid)
