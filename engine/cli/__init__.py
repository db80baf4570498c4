"""The `trainline` command: set up a project, run its stages, check params, show schedules and param groups,
compare and report results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.errors import UserError, error_lines

PARAMS = click.option("--params", "params", default="params.yaml", show_default=True,
                      type=click.Path(dir_okay=False), help="params file")


class _Group(click.Group):
    """Turns user errors into `error:` lines on stderr (one per params problem) and exit code 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo("\n".join(error_lines(exc)), err=True)  # one line per problem, each naming its key path
            sys.exit(exc.exit_code)


@click.group(cls=_Group)
@click.version_option(package_name="trainline", prog_name="trainline")
def main() -> None:
    """Trainline: reproducible PyTorch training pipelines (DVC stages, Accelerate engine, MLflow tracking)."""


@main.command()
@PARAMS
@click.option("--print", "show", is_flag=True, help="print the resolved config (defaults filled in)")
@click.option("--origin", is_flag=True,
              help="print the resolved config with, after each value, the file that set it (or default)")
def check(params: str, show: bool, origin: bool) -> None:
    """Validate params: every problem at once, each naming its key path. Exit 0 if valid, 2 if not."""
    from engine.config.dvc_stages import dvc_yaml_problems
    from engine.errors import ConfigError
    from engine.pipeline.start import load_checked, setup_logging

    setup_logging(verbose=False)
    # Both sets of problems at once: the params' own, then what `dvc repro` would refuse in dvc.yaml.
    try:
        cfg = load_checked(params)
    except ConfigError as exc:
        raise ConfigError(exc.problems + dvc_yaml_problems(params)) from None
    stage_problems = dvc_yaml_problems(params)
    if stage_problems:
        raise ConfigError(stage_problems)
    if origin:
        from engine.config.origins import dump_with_origins
        from engine.config.yaml_io import load_params_with_origins

        click.echo(dump_with_origins(cfg, load_params_with_origins(params)[1]), nl=False)
    elif show:
        from engine.config import dump_yaml

        click.echo(dump_yaml(cfg), nl=False)
    else:
        click.echo(f"{params}: ok")


@main.command("dvc-params")
@PARAMS
@click.option("--check", "check_only", is_flag=True, help="change nothing; exit 1 if dvc.yaml would change")
def dvc_params(params: str, check_only: bool) -> None:
    """List in dvc.yaml's stages every file the params file includes (`_base_`), for each key the stage reads, so
    DVC reruns the stages an included file's change concerns. Only the `params:` lists are rewritten."""
    from engine.cli.dvc_params import dvc_params as update

    lines, changed = update(params, write=not check_only)
    for line in lines:
        click.echo(line)
    if check_only and changed:
        click.echo("dvc.yaml is not up to date with the includes of " + params + "; run `trainline dvc-params`",
                   err=True)
        sys.exit(1)
    click.echo(("dvc.yaml would change" if check_only else "updated dvc.yaml") if changed else "dvc.yaml is up to date")


@main.command()
@PARAMS
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="write iter,lr[,momentum],lr/<group>...")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="write a PNG plot of the schedule")
def schedule(params: str, csv_path: str | None, plot_path: str | None) -> None:
    """The LR (and momentum) at every iteration as training would apply it, without training."""
    from engine.cli.schedule_output import plot_schedule, schedule_csv
    from engine.optim.simulate import simulate_schedule
    from engine.pipeline.start import load_checked, setup_logging

    setup_logging(verbose=False)
    rows = simulate_schedule(load_checked(params))
    text = schedule_csv(rows)
    if csv_path:
        Path(csv_path).write_text(text, encoding="utf-8")
    if plot_path:
        plot_schedule(rows, Path(plot_path))
    if not csv_path and not plot_path:
        click.echo(text, nl=False)


@main.command("param-groups")
@PARAMS
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def param_groups(params: str, as_json: bool) -> None:
    """Every parameter with its lr, weight_decay and the rule that set them."""
    from engine import build
    from engine.optim.constructors import build_param_groups
    from engine.pipeline.start import load_checked, setup_logging

    setup_logging(verbose=False)
    cfg = load_checked(params)
    model = build.build_model(cfg)
    ow = cfg["optim_wrapper"]
    kwargs = build.optimizer_kwargs(cfg)
    _, rules = build_param_groups(model, kwargs, ow["paramwise_cfg"], ow["constructor"])
    rows = [{"name": r.name, "lr": r.lr, "weight_decay": r.weight_decay, "rule": r.rule} for r in rules]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r.name) for r in rules)
    click.echo(f"{'parameter':<{width}}  {'lr':>12}  {'weight_decay':>12}  rule")
    for rule in rules:  # None: the key is not in `optim`, so the optimizer's own default applies
        lr = "default" if rule.lr is None else f"{rule.lr:.6g}"
        wd = "-" if rule.weight_decay is None else f"{rule.weight_decay:.6g}"
        click.echo(f"{rule.name:<{width}}  {lr:>12}  {wd:>12}  {rule.rule}")


@main.command()
@PARAMS
@click.argument("runs", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["table", "md", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", default=10, show_default=True, help="at most this many DVC experiments of the commit")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="write a PNG overlaying one metric's curves")
@click.option("--metric", help="the metric --plot draws (default: the first headline metric on val, else train/loss)")
def compare(params: str, runs: tuple[str, ...], fmt: str, limit: int, plot_path: str | None,
            metric: str | None) -> None:
    """Runs side by side: differing params, final and best headline metrics with deltas against the first.

    RUNS are run ids, DVC experiment names or params hashes; none = the current experiment set, as `dvc exp show`
    lists it: the commit's baseline run, the DVC experiments on that commit, and the run that trained the
    workspace's params (found by its params_hash tag, also when DVC restored the training from its run-cache)."""
    from engine import tracking
    from engine.cli import run_selection
    from engine.cli.compare_runs import comparison, headline_metrics, plot_curves, render
    from engine.config import load_params
    from engine.config.schema import training_hash
    from engine.config.validate import resolve

    cfg = resolve(load_params(params))
    uri = tracking.tracking_uri(cfg)
    tracking.check_store(uri)
    client = tracking.client(uri)
    name = cfg["mlflow"]["experiment_name"]
    exp_id = run_selection.experiment_id_of(client, name)
    if runs:
        selection = run_selection.named_runs(client, exp_id, name, list(runs))
    else:
        selection = run_selection.experiment_set(client, exp_id, tracking.project_root(), training_hash(cfg), limit)
    if not selection.runs:
        raise UserError(f"no runs yet in experiment {name!r}; run `dvc repro` first")
    for note in selection.notes:  # stderr: --format json/csv on stdout stays machine-readable
        click.echo(f"note: {note}", err=True)
    cache: dict[tuple[str, str], list[tuple[int, float]]] = {}

    def history(run_id: str, key: str) -> list[tuple[int, float]]:
        if (run_id, key) not in cache:
            points = client.get_metric_history(run_id, key)
            cache[run_id, key] = sorted((m.step, m.value) for m in points)
        return cache[run_id, key]

    header, rows = comparison(selection.runs, history=lambda r, k: [v for _, v in history(r, k)])
    click.echo(render(header, rows, fmt), nl=False)
    if plot_path:
        shown = headline_metrics(selection.runs)
        key = metric or next((k for k in shown if k.startswith("val/")), "train/loss")
        if not plot_curves(selection.runs, key, history, Path(plot_path)):
            logged = sorted({k for r in selection.runs for k in r.data.metrics})
            raise UserError(f"--metric: none of the compared runs logged {key!r}; logged: {', '.join(logged)}")
        click.echo(f"wrote {plot_path} ({key})", err=True)


@main.command()
@PARAMS
def report(params: str) -> None:
    """Print the eval metrics table, the MLflow run that trained these weights, and how to open the MLflow UI."""
    from engine.cli.tables import metrics_table
    from engine.config import load_params
    from engine.config.validate import resolve

    path = Path("metrics/eval.json")
    if not path.is_file():
        raise UserError(f"{path}: not found; run `dvc repro` first")
    result = json.loads(path.read_text(encoding="utf-8"))
    click.echo(f"\n{result.get('split', 'test')} split ({path}):")
    click.echo(metrics_table(result))
    cfg = resolve(load_params(params))
    for line in _trained_by(cfg):
        click.echo(line)
    click.echo("\nMLflow runs (params, curves, checkpoints): `trainline ui` serves them on http://127.0.0.1:5000")


def _trained_by(cfg: dict) -> list[str]:
    """The run that trained the workspace's params, found by its params_hash tag; a note when DVC reused it."""
    from engine import tracking
    from engine.cli import run_selection
    from engine.config.schema import training_hash

    uri = tracking.tracking_uri(cfg)
    try:
        tracking.check_store(uri)
        client = tracking.client(uri)
        experiment = client.get_experiment_by_name(cfg["mlflow"]["experiment_name"])
        if experiment is None:
            return []
        params_hash = training_hash(cfg)
        run, note = run_selection.workspace_run(client, experiment.experiment_id, tracking.project_root(),
                                                params_hash)
    except (UserError, OSError) as exc:  # a report still prints what it has when the store does not answer
        return [f"\nMLflow: {exc}"]
    if run is None:
        return [f"\nno MLflow run tagged params_hash {params_hash} in {uri}"]
    lines = [f"\ntrained by MLflow run {run_selection.describe(run)}, status {run.info.status}"]
    return lines + ([f"note: {note}"] if note else [])


@main.command()
@click.option("--model", help="dotted path of your model class (default: the bundled example's UNet)")
@click.option("--dataset", help="dotted path of your dataset class")
@click.option("--evaluator", help="dotted path of your evaluator class")
@click.option("--prepare", "prepare", help="dotted path of the callable that writes the data")
@click.option("--no-prepare", is_flag=True, help="the data is already there: no prepare stage")
@click.option("--data-root", help="the dataset directory (default: data/shapes for the example, else data)")
@click.option("--force", is_flag=True, help="replace an existing params.yaml / dvc.yaml")
def init(model: str | None, dataset: str | None, evaluator: str | None, prepare: str | None, no_prepare: bool,
         data_root: str | None, force: bool) -> None:
    """Set up Trainline in this git repository: a commented params.yaml, a dvc.yaml running `trainline stage`
    prepare/train/eval, DVC initialised, outputs ignored by git."""
    from engine.cli.init_project import init_project

    for line in init_project(Path.cwd(), model=model, dataset=dataset, evaluator=evaluator, prepare=prepare,
                             no_prepare=no_prepare, data_root=data_root, force=force):
        click.echo(line)
    click.echo("next: point model, data.dataset and evaluator in params.yaml at your classes, then run "
               "`trainline check` and `dvc repro`")


@main.command()
def unlock() -> None:
    """Remove DVC's stale locks (.dvc/tmp/rwlock entries of processes that are gone) left by a hard kill; locks of
    running processes stay."""
    from engine.cli.unlock import project_root
    from engine.cli.unlock import unlock as remove_stale

    root = project_root(Path.cwd().resolve())
    removed = remove_stale(root)
    for line in removed:
        click.echo(f"removed {line}")
    if not removed:
        click.echo("nothing to unlock")


@main.command()
@PARAMS
@click.option("--work-dir", "work_dir", default="work_dirs", show_default=True, type=click.Path(file_okay=False),
              help="where the trainings' work dirs are")
def sync(params: str, work_dir: str) -> None:
    """Send what a tracking outage left in the work dirs' spools to the MLflow store (params.yaml's
    mlflow.tracking_uri, or MLFLOW_TRACKING_URI); each record is delivered once, in order."""
    from engine import tracking
    from engine.cli.sync_spools import sync_spools
    from engine.config import load_params
    from engine.config.validate import resolve

    uri = tracking.tracking_uri(resolve(load_params(params)))
    tracking.check_reachable(uri)
    sent, failed = sync_spools(Path(work_dir), tracking.client(uri), uri)
    for line in sent:
        click.echo(line)
    for line in failed:
        click.echo(f"error: {line}", err=True)
    if failed:
        sys.exit(1)
    if not sent:
        click.echo(f"nothing to send: no pending tracking records under {work_dir}")


@main.command()
@PARAMS
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="port to serve on")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="interface to bind; anything but loopback exposes the store to the network (with a warning)")
def ui(params: str, port: int, host: str) -> None:
    """The MLflow UI on this project's store (params.yaml's mlflow.tracking_uri, or MLFLOW_TRACKING_URI, or the
    embedded mlflow.db): prints the experiment's URL once the server answers; Ctrl-C stops it."""
    from engine import tracking
    from engine.cli.ui_server import UiSettings, serve
    from engine.config import load_params
    from engine.config.validate import resolve

    cfg = resolve(load_params(params))
    sys.exit(serve(UiSettings(tracking.tracking_uri(cfg), cfg["mlflow"]["experiment_name"], host, port)))


@main.command("import-mmseg")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the params here (default: stdout)")
@click.option("--base", type=click.Path(dir_okay=False),
              help="params file the output starts from (`_base_:`), e.g. the shipped params.yaml")
@click.option("--force", is_flag=True, help="replace an existing output file")
def import_mmseg(config: str, output: str | None, base: str | None, force: bool) -> None:
    """Convert an MMSeg/MMEngine Python config to params.yaml without running it; every key that does not map is
    listed on stderr with the reason (docs/from-mmseg.md)."""
    from engine.cli.import_mmseg import check_paths, write_new
    from engine.cli.import_mmseg import import_mmseg as convert

    out_path, base_path = (Path(output) if output else None), (Path(base) if base else None)
    check_paths(Path(config), base_path, out_path)
    text, lines = convert(Path(config), base_path, out_path)
    for line in lines:
        click.echo(line, err=True)
    if out_path is None:
        click.echo(text, nl=False)
    else:
        write_new(out_path, text, force)
        click.echo(f"wrote {out_path}", err=True)


@main.command()
@PARAMS
@click.option("--weights", default="models/model.safetensors", show_default=True, type=click.Path(),
              help="trained weights: a .safetensors file or a checkpoint directory holding model.safetensors")
@click.option("--input", "source", required=True, type=click.Path(), help="an image file or a directory of images")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="where the PNGs go")
@click.option("--mode", type=click.Choice(["auto", "whole", "slide"]), default="auto", show_default=True,
              help="whole image in one pass, sliding window, or auto: whole when the image fits in the crop")
@click.option("--crop-size", nargs=2, type=click.IntRange(min=1), default=None, metavar="H W",
              help="sliding-window size (default: the training image size, prepare.image_size)")
@click.option("--stride", nargs=2, type=click.IntRange(min=1), default=None, metavar="H W",
              help="sliding-window step (default: two thirds of the crop)")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="weight of the class colours in the overlay")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="windows per pass")
@click.option("--device", help="torch device (default: cuda if available, else cpu)")
@click.option("--predictor", default="engine.seg.predict.predict", show_default=True,
              help="dotted path of the function that predicts (your project's own; docs/predict.md)")
def predict(params: str, weights: str, source: str, out_dir: str, mode: str, crop_size: tuple[int, int] | None,
            stride: tuple[int, int] | None, alpha: float, batch_size: int, device: str | None,
            predictor: str) -> None:
    """Predict new images with trained weights: masks, colour masks and overlays under --out; one `error:` line per
    bad input (the others are still written), exit 2 if there was any."""
    import importlib

    import torch

    from engine import build
    from engine.pipeline.start import load_checked, setup_logging

    setup_logging(verbose=False)
    cfg = load_checked(params, data=False)
    module, _, attr = predictor.rpartition(".")
    try:
        predict_fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(f"--predictor: {predictor} cannot be imported ({exc}); give module.function") from None
    try:
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as exc:
        raise UserError(f"--device: {device!r} is not a torch device ({exc})") from None
    model = build.build_model(cfg)
    _load_predict_weights(model, Path(weights), params)
    model.to(target).eval()
    options = {"mode": mode, "crop_size": crop_size, "stride": stride, "alpha": alpha, "batch_size": batch_size}
    with torch.no_grad():
        done, problems = predict_fn(model, cfg, Path(source), Path(out_dir), options)
    for line in done:
        click.echo(line)
    for line in problems:
        click.echo(f"error: {line}", err=True)
    if problems:
        sys.exit(UserError.exit_code)


def _load_predict_weights(model: object, weights: Path, params: str) -> None:
    """The trained weights into `model`, strictly: a mismatch names the keys and says which params to use."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from engine.weights import load_weights

    path = weights / "model.safetensors" if weights.is_dir() else weights
    if not path.is_file():
        raise UserError(f"--weights: {weights} not found; train first (dvc repro train) or give a .safetensors file "
                        f"or a checkpoint directory")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"--weights: {path} is not a readable safetensors file ({exc})") from None
    load_weights(model, tensors, source=str(path),  # type: ignore[arg-type]
                 cause=f"pass the params file these weights were trained with (--params, now {params})")


_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@main.group()
def stage() -> None:
    """Run one pipeline stage (what dvc.yaml calls): prepare, train or eval; `--params FILE` as in check."""


def _stage_command(name: str) -> None:
    @stage.command(name, context_settings=_PASS_THROUGH, add_help_option=False)
    @click.pass_context
    def command(ctx: click.Context) -> None:
        import importlib

        from engine.pipeline.start import run_main

        module = importlib.import_module(f"engine.pipeline.{name}")
        run_main(lambda: module.main(list(ctx.args)))

    command.__doc__ = f"The {name} stage (`trainline stage {name} --help` lists its options)."


for _name in ("prepare", "train", "eval"):
    _stage_command(_name)


if __name__ == "__main__":
    main()
