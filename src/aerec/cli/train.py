"""`aerec train` and `aerec evaluate`: thin wrappers over aerec.runner."""

from __future__ import annotations

import json
import sys

import click

from aerec.cli.options import (
    check_device_option,
    data_mapping,
    data_options,
    device_options,
    ks_option,
    warnings_as_lines,
)


@click.command("train")
@click.argument("model", required=False)
@click.option("--dataset", "-d", help="Data set name (e.g. ml-100k) or path to a file.")
@click.option("--protocol", "-p", help="strong, weak, ratings-kfold, ratings-holdout, temporal, or full "
              "(fit one model on all data for production).")
@click.option("--folds", type=int, help="Number of folds (repeats for ratings-holdout).")
@click.option("--protocol-set", "protocol_sets", multiple=True, metavar="KEY=VALUE",
              help="Protocol option, e.g. mode=user for temporal; repeatable (as `aerec split --set`).")
@click.option("--seed", type=int, help="Seed for the split and the model (default 0).")
@click.option("--epochs", type=int, help="Shortcut for --set epochs=N.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Model config value; repeatable.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML with [model], and optionally [run] and [protocol] sections (a run's config.toml works).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default runs/MODEL-DATA-PROTOCOL-seedS).")
@click.option("--resume", is_flag=True, help="Continue a killed run: finished folds are skipped, the rest "
              "resume from their last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (the old one stays until the new one is "
              "complete).")
@device_options
@click.option("--amp", is_flag=True, help="bf16 mixed precision in training (CUDA only); the same as --precision bf16.")
@click.option("--nproc", type=click.IntRange(min=1), help="Train with N processes on this machine: runs "
              "torchrun --standalone --nproc_per_node N (gloo on CPU, nccl on GPU). See docs/distributed.md.")
@data_options
@ks_option
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json to standard output.")
def train_cmd(model, dataset, protocol, folds, protocol_sets, seed, epochs, sets, config_file, out, resume,
              overwrite, device, precision, amp, nproc, as_json, ks, **data_params):
    """Train MODEL on every fold of a protocol and write a run directory.

    The run directory gets config.json, config.toml, history.csv, fold-<f>/model and
    metrics.json (mean, sample std with ddof=1, and per-fold values of each metric).
    Under torchrun (or with --nproc) every process trains its share of each batch and only
    rank 0 writes files.

    The run is built in a hidden .OUT.partial folder beside OUT and moved to OUT when every fold
    is done, so a failed or killed run never damages a finished one; a failed run's folder is
    accepted by the rerun, and --resume continues a killed one.
    """
    from aerec import distributed

    try:
        _train(model, dataset, protocol, folds, protocol_sets, seed, epochs, sets, config_file, out, resume,
               overwrite, device, precision, amp, nproc, as_json, ks, data_params)
    except Exception as e:
        if distributed.launched() and distributed.report_worker_error(e):  # the launcher prints it, once
            sys.exit(getattr(e, "exit_code", 1))  # SystemExit: no handler prints it again
        raise


def _train(model, dataset, protocol, folds, protocol_sets, seed, epochs, sets, config_file, out, resume, overwrite,
           device, precision, amp, nproc, as_json, ks, data_params):
    from aerec import deps, distributed, models, runner, ui

    spec = runner.resolve(model, dataset=dataset, protocol=protocol, folds=folds, seed=seed, epochs=epochs,
                          sets=list(sets), config_file=config_file, device=device, amp=amp, precision=precision,
                          protocol_sets=list(protocol_sets), data_options=data_mapping(data_params), ks=ks)
    deps.check(models.get(spec.model))  # a missing optional library: one line now, not after loading data
    launching = nproc is not None and nproc > 1 and not distributed.launched()
    if launching or distributed.launched():
        distributed.check_model(models.get(spec.model))  # fail here, not in N workers
    if launching:
        runner.preflight(spec, out, resume=resume, overwrite=overwrite)  # data, protocol, run folder: once
        params = click.get_current_context().params
        distributed.launch(nproc, _relaunch_args(params))
        return
    out_dir = out or runner.default_out(spec)
    ctx = distributed.init(spec.model_config.get("device", "cpu")) if distributed.launched() else None
    ui.info(f"training {spec.model} on {spec.dataset} ({spec.protocol}), run directory {out_dir}")
    if ctx is not None:
        ui.info(f"{ctx.world} processes ({distributed.BACKENDS[ctx.device.type]}), global batch "
                f"{spec.model_config.get('batch_size')}")
    ok = False
    try:
        with warnings_as_lines():
            result = runner.train(spec, out_dir, resume=resume, overwrite=overwrite)
        ok = True
    finally:
        distributed.shutdown(wait=ok)
    if ctx is not None and not ctx.is_writer:  # one report, from rank 0
        return
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif "metrics" in result:
        _table(result)


def _relaunch_args(params: dict) -> list[str]:
    """This command's arguments for the workers, minus --nproc."""
    from aerec import ui

    args = (["--quiet"] if ui.quiet() else []) + ["train"] + ([params["model"]] if params["model"] else [])
    for name, flag in (("dataset", "--dataset"), ("protocol", "--protocol"), ("folds", "--folds"),
                       ("seed", "--seed"), ("epochs", "--epochs"), ("config_file", "--config"), ("out", "--out"),
                       ("device", "--device"), ("precision", "--precision")):
        if params[name] is not None:
            args += [flag, str(params[name])]
    for value in params["sets"]:
        args += ["--set", value]
    for value in params["protocol_sets"]:
        args += ["--protocol-set", value]
    for name, flag in (("resume", "--resume"), ("overwrite", "--overwrite"), ("amp", "--amp"), ("as_json", "--json"),
                       ("no_header", "--no-header")):
        if params.get(name):
            args.append(flag)
    for name in ("user_col", "item_col", "rating_col", "time_col", "title_col", "sep", "feedback", "threshold"):
        if params.get(name) is not None:
            args += ["--" + name.replace("_", "-"), str(params[name])]
    if params.get("ks"):
        args += ["--ks", ",".join(map(str, params["ks"]))]
    return args


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@ks_option
@click.option("--device", default=None, callback=check_device_option, metavar="cpu|cuda|cuda:N|auto",
              help="Where the fold models score (default auto: the GPU when there is one).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_cmd(run_dir, as_json, ks, device):
    """Re-evaluate a saved run: reload each fold model, rebuild the split, compute the metrics.

    Writes RUN_DIR/metrics.evaluated.json and says whether it equals the saved metrics.json.
    """
    from aerec import runner

    result = runner.evaluate_run(run_dir, ks=ks, device=device)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _table(result)
        match = result.get("matches_saved")
        click.echo("matches the saved metrics.json" if match else
                   "no saved metrics.json to compare with" if match is None else
                   "DIFFERS from the saved metrics.json")


def _table(result: dict) -> None:
    from aerec.metrics import format_grid

    folds = result["folds"]
    click.echo(f"{result['model']} on {result['dataset']} ({result['protocol']}, {folds} fold(s), seed {result['seed']})")
    click.echo(format_grid(result["metrics"]))


commands = [train_cmd, evaluate_cmd]
