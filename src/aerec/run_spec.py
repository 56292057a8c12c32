"""What a run is: the ``[run]`` section, the resolved RunSpec, and how command-line values and a
TOML config merge into one (``resolve``). Split out of runner.py, which re-exports these names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aerec import config as cfgmod
from aerec.errors import ConfigError


@dataclasses.dataclass
class RunSection:
    """The ``[run]`` section of a run config file."""

    model: str | None = None
    dataset: str | None = None
    protocol: str | None = None
    folds: int | None = None
    seed: int = cfgmod.seed_field()
    ks: list | None = None
    device: str | None = None  # cpu, cuda, cuda:N or auto (the default); --device wins
    precision: str | None = None  # fp32 (default), tf32 or bf16; --precision wins


@dataclasses.dataclass
class RunSpec:
    model: str
    dataset: str
    protocol: str
    folds: int | None
    seed: int
    model_config: dict
    protocol_options: dict
    data_options: dict = dataclasses.field(default_factory=dict)  # aerec.data.load keywords ([data])
    ks: tuple | None = None  # metric cutoffs; None: RANKING_KS
    given_protocol: tuple = ()  # protocol keys the user set (they win over the feedback decision)
    device: str = "cpu"  # the device chosen for the run (auto resolved); the model's own for neural models
    precision: str = "fp32"

    def toml(self) -> str:
        run = {"model": self.model, "dataset": self.dataset, "protocol": self.protocol, "folds": self.folds,
               "seed": self.seed}
        if self.ks:
            run["ks"] = list(self.ks)
        if self.precision != "fp32":
            run["precision"] = self.precision
        sections = {"run": run, "model": self.model_config}
        if self.data_options:
            sections["data"] = self.data_options
        opts = {k: v for k, v in self.protocol_options.items() if k not in ("seed", "n_folds", "repeats")}
        if opts:
            sections["protocol"] = opts
        return cfgmod.dumps_toml(sections)


def resolve(model: str | None = None, *, dataset: str | None = None, protocol: str | None = None,
            folds: int | None = None, seed: int | None = None, epochs: int | None = None,
            sets: list[str] | tuple = (), config_file: str | Path | None = None,
            device: str | None = None, amp: bool = False, protocol_sets: list[str] | tuple = (),
            data_options: dict | None = None, ks=None, precision: str | None = None) -> RunSpec:
    """Merge a TOML config file with command-line values (which win) and validate everything.

    data_options: the data section (column mapping, feedback, threshold; see aerec.data.options)
    over the config's [data] section. ks: metric cutoffs over the config's [run] ks.
    """
    from aerec import metrics as metricsmod
    from aerec import models
    from aerec.data import options as dataopts

    file = cfgmod.load_toml(config_file) if config_file else {}
    unknown = sorted(set(file) - {"run", "model", "protocol", "data"})
    if unknown:
        raise ConfigError(f"{config_file}: unknown section(s) {', '.join(unknown)}; valid sections: data, model, protocol, run")
    data_opts = dataopts.merge(file.get("data"), data_options, where=f"{config_file} [data]")
    run = cfgmod.build(RunSection, {**file.get("run", {}), **({} if seed is None else {"seed": seed})})
    if model and run.model and models.get(model).name != models.get(run.model).name:
        raise ConfigError(f"{config_file} is for model '{run.model}', not '{model}'")
    name = model or run.model
    dataset, protocol = dataset or run.dataset, protocol or run.protocol
    for label, value in (("MODEL", name), ("--dataset", dataset), ("--protocol", protocol)):
        if not value:
            raise ConfigError(f"{label} is required (give it on the command line or in the config's [run] section)")
    if protocol == "full" and folds is not None:
        raise ConfigError("protocol 'full' fits one model on all the data; --folds does not apply")
    folds = folds if folds is not None else run.folds
    seed = run.seed
    cls = models.get(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    values = {**file.get("model", {}), **cfgmod.parse_set(list(sets))}
    if epochs is not None:
        if "epochs" not in fields:
            raise ConfigError(f"model '{cls.name}' has no 'epochs' setting; valid keys: {', '.join(sorted(fields))}")
        values["epochs"] = epochs
    from aerec import devices

    # the device: --device, else the config's [model] device, else its [run] device, else auto;
    # auto is resolved here, so the run records (and resumes on) the device it really used
    asked = device if device is not None else values.get("device", run.device)
    if "device" in fields:
        values["device"] = run_device = devices.choose(asked)
    elif asked not in (None, "cpu", "auto"):  # models without a device setting run on the CPU
        raise ConfigError(f"model '{cls.name}' runs on the CPU; --device {asked} does not apply")
    else:
        run_device = "cpu"
    precision = precision or run.precision or ("bf16" if amp else "fp32")
    if amp and precision != "bf16":
        raise ConfigError(f"--amp is bf16 autocast; it contradicts --precision {precision}")
    if not amp:  # --amp has its own message below
        devices.check_precision(precision, run_device)
    if precision == "bf16":
        if "amp" not in fields:
            raise ConfigError(f"model '{cls.name}' has no mixed-precision setting (--amp is for the neural models)")
        values["amp"] = True
    if "seed" in fields and "seed" not in values:  # one seed drives the split and the model
        values["seed"] = seed
    try:
        cfg = cfgmod.build(cls.Config, values)
    except ConfigError as e:
        raise ConfigError(f"model '{cls.name}': {e}") from None
    if getattr(cfg, "amp", False):
        from aerec.devices import resolve_device

        if resolve_device(cfg.device).type != "cuda":  # fail before any data is read
            raise ConfigError(f"--amp (mixed precision) needs a CUDA device; this run trains on {cfg.device}")
    if protocol == "full" and protocol_sets:  # a config file's [protocol] section is ignored, as before
        raise ConfigError("protocol 'full' takes no options (it fits on all the data); drop --protocol-set")
    opts = {**file.get("protocol", {}), **cfgmod.parse_set(list(protocol_sets))}
    given = tuple(sorted(opts))
    ks = ks if ks is not None else run.ks
    if ks is not None:
        ks = metricsmod.check_ks(ks)
    if protocol != "full":
        opts = _protocol(protocol, folds, seed, opts).options()
        _check_task(cls, protocol)
    return RunSpec(model=cls.name, dataset=str(dataset), protocol=protocol, folds=folds, seed=seed,
                   model_config=cfgmod.to_dict(cfg), protocol_options=opts, data_options=data_opts, ks=ks,
                   given_protocol=given, device=run_device, precision=precision)


def _protocol(name: str, folds, seed, options: dict):
    from aerec import protocols

    options = dict(options)
    options.setdefault("seed", seed)
    return protocols.get(name, folds=folds, **options)


def _check_task(cls, protocol: str) -> None:
    from aerec import protocols

    p = protocols.PROTOCOLS[protocol]
    if getattr(p, "task", "ranking") != cls.task:
        raise ConfigError(f"model '{cls.name}' is a {cls.task} model and protocol '{protocol}' is a "
                          f"{p.task} protocol; choose a matching pair")


def default_out(spec: RunSpec) -> Path:
    label = Path(spec.dataset).stem if ("/" in spec.dataset or "." in spec.dataset) else spec.dataset
    return Path("runs") / f"{spec.model}-{label}-{spec.protocol}-seed{spec.seed}"
