"""ONNX export of a model's scoring graph: a dense block of history rows -> scores over all items.

The graph is the model's fold-in path (what ``model.score`` computes), with input ``history``
float32 [batch, n_items] and output ``scores`` float32 [batch, n_items]; the batch axis is
dynamic and the columns follow the model directory's ``items.json``. Per model:

- multdae, multvae, recvae: ``net.forward_dense`` (L2-normalized input; the VAEs decode the mean);
- cdae: the input binarized, and a zero user vector (a new user has no learned vector);
- autorec with ``variant="user"``, deeprec: encoder and decoder, then clipping to the rating range
  and the unseen default for items without training ratings and for empty rows;
- ease: one MatMul with B.

Not exportable, with the reason in the error: I-AutoRec (``variant="item"``) folds a new user in by
solving a ridge regression per user (a batched linear solve; ONNX has no solve operator), and pop,
whose scores do not depend on the history at all.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from aerec import fsutil
from aerec.errors import AerecError, DataError

INPUT, OUTPUT = "history", "scores"
DEFAULT_OPSET = 17


def _need_onnx():
    from aerec import deps

    deps.check_feature("export")
    import onnx
    return onnx


def scoring_function(model):
    """A torch function x [batch, n_items] -> scores, equal to ``model.score`` on those rows."""
    import torch

    from aerec.models.autorec import ACTIVATIONS, AutoRec, RatingAutoencoder

    net = getattr(model, "net", None)
    name = model.name
    if name in ("multdae", "multvae", "recvae"):
        return net.forward_dense
    if name == "cdae":
        return lambda x: net.forward_dense((x != 0).to(x.dtype))  # CDAE reads item ids only
    if isinstance(model, RatingAutoencoder):
        if isinstance(model, AutoRec):
            if model.item_based:
                raise DataError("I-AutoRec (variant='item') cannot be exported: its inputs are users, so a new "
                                "user is folded in by a per-user ridge regression over the item codes, a linear "
                                "solve that ONNX has no operator for; export a U-AutoRec (variant='user') instead")
            act = ACTIVATIONS[model.config.hidden_activation]

            def encode(x):
                return act(net.encoder.forward_dense(x))
        else:
            def encode(x):
                return model._hidden(net.first.forward_dense(x))
        default = float(model._default())

        def rating(x):
            values = torch.clamp(model._decode(encode(x)), net.stats[0], net.stats[1])
            known = net.item_seen[None, :] & (x != 0).any(dim=1, keepdim=True)
            return torch.where(known, values, torch.full_like(values, default))

        return rating
    if name == "ease":
        b = torch.from_numpy(model.B)
        return lambda x: (x.to(b.dtype) @ b).to(torch.float32)
    if name == "pop":
        raise DataError("pop cannot be exported: its scores do not depend on the history (they are the item "
                        "counts stored in weights.safetensors)")
    raise DataError(f"{name} has no ONNX export")


def scoring_graph(model):
    """The nn.Module the exporter traces: forward(history) -> scores (built here: torch is lazy)."""
    import torch

    fn = scoring_function(model)

    class ScoringGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if hasattr(model, "net"):
                self.net = model.net  # registers the weights as graph initializers

        def forward(self, history):
            return fn(history)

    return ScoringGraph().eval()


def export_onnx(model, path, *, opset: int = DEFAULT_OPSET, exporter: str = "torchscript") -> dict:
    """Write the scoring graph of a fitted model to ``path`` (atomically); return a summary.

    exporter: "torchscript" (fast, needs only onnx) or "dynamo" (torch.export based, needs onnxscript).
    """
    import torch

    onnx = _need_onnx()
    model._check_fitted()
    if exporter not in ("torchscript", "dynamo"):
        raise DataError(f"unknown exporter {exporter!r}; use 'torchscript' or 'dynamo'")
    graph = scoring_graph(model)
    device = next(iter(graph.parameters()), torch.zeros(0)).device
    example = torch.zeros(2, model.n_items, device=device)
    example[0, : min(3, model.n_items)] = 1.0
    path = Path(path)
    with fsutil.atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer chatter
        if exporter == "dynamo":
            try:
                import onnxscript  # noqa: F401
            except ImportError:
                raise AerecError("the dynamo exporter needs onnxscript: pip install onnxscript") from None
            batch = torch.export.Dim("batch")
            prog = torch.onnx.export(graph, (example,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                     dynamic_shapes=({0: batch},), opset_version=opset, verbose=False)
            prog.save(str(tmp))
        else:
            torch.onnx.export(graph, (example,), str(tmp), dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=opset)
        proto = onnx.load(str(tmp))
        meta = {"aerec_model": model.name, "n_items": str(model.n_items),
                "columns": "item order of the model directory's items.json"}
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return {"path": str(path), "model": model.name, "n_items": int(model.n_items), "opset": opset,
            "exporter": exporter, "input": f"{INPUT} float32 [batch, {model.n_items}]",
            "output": f"{OUTPUT} float32 [batch, {model.n_items}]", "bytes": path.stat().st_size}


def check_onnx(model, path, history) -> float:
    """Largest absolute difference between onnxruntime on ``path`` and ``model.score(history)``."""
    import numpy as np

    from aerec import deps

    deps.check_feature("export")
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {INPUT: history.toarray().astype(np.float32)})[0]
    return float(np.abs(got - model.score(history)).max()) if history.shape[0] else 0.0
