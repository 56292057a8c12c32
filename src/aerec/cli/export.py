"""`aerec export`: a model's scoring graph as ONNX (the optional `onnx` extra)."""

from __future__ import annotations

import json

import click


@click.command("export")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False), help="Output .onnx file.")
@click.option("--opset", type=click.IntRange(13, 23), default=17, show_default=True)
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript", show_default=True,
              help="torch's exporter; dynamo also needs onnxscript.")
@click.option("--check", is_flag=True, help="Run the file with onnxruntime on up to 256 stored histories and "
              "compare with the model's own scores.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export(model_dir, onnx_path, opset, exporter, check, as_json):
    """Export MODEL_DIR's scoring graph (dense history rows -> scores over all items) to ONNX.

    MODEL_DIR may be a run directory (its full model, else fold 0's). Input 'history' is float32
    [batch, n_items] in the column order of the model's items.json; output 'scores' likewise.
    Neural models and EASE; not pop, nor I-AutoRec (the error says why).
    """
    from aerec import export as exp
    from aerec import serve

    exp._need_onnx()
    model = serve.load_model(model_dir)
    info = exp.export_onnx(model, onnx_path, opset=opset, exporter=exporter)
    if check:
        hist = getattr(model, "histories", None)
        if hist is None:
            import numpy as np
            import scipy.sparse as sp

            hist = sp.random(8, model.n_items, density=0.05, format="csr", dtype=np.float32, random_state=0)
        info["max_abs_diff"] = exp.check_onnx(model, onnx_path, hist[:256])
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(f"wrote {info['path']}: {info['model']} scoring graph, {info['input']} -> {info['output']}, "
                   f"opset {opset}, {info['bytes']} bytes")
        if check:
            click.echo(f"onnxruntime vs torch on {min(256, hist.shape[0])} histories: max |diff| {info['max_abs_diff']:.3g}")


commands = [export]
