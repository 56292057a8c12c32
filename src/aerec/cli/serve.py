"""`aerec serve`: the HTTP service (FastAPI + uvicorn, the optional `serve` extra)."""

from __future__ import annotations

import ipaddress

import click

from aerec.cli.options import FiniteFloat, check_device_option


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Loopback by default; the service has no authentication.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-batch", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Most requests scored in one forward pass.")
@click.option("--batch-wait-ms", type=FiniteFloat(0, 100), default=2.0, show_default=True,
              help="How long a batch waits for more requests after its first one.")
@click.option("--max-body", type=click.IntRange(1024, 16 * 1024 * 1024), default=64 * 1024, show_default=True,
              help="Largest request body in bytes (bigger ones get 413).")
@click.option("--limit-concurrency", type=click.IntRange(1, None), default=512, show_default=True,
              help="Most open connections. A new one beyond closes the oldest connection that has not "
                   "sent a complete request; if every connection awaits an answer, it gets 503.")
@click.option("--read-timeout", type=FiniteFloat(0.1, 600), default=10.0, show_default=True,
              help="Seconds a client has to send a request's headers and body; slower ones are dropped.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
@click.option("--device", default=None, callback=check_device_option, metavar="cpu|cuda|cuda:N|auto",
              help="Where the model scores (default auto: the GPU when there is one).")
def serve(model_dir, host, port, max_batch, batch_wait_ms, max_body, limit_concurrency, read_timeout, log_level,
          device):
    """Serve recommendations from MODEL_DIR (a model directory, or a run directory: its full
    model, else fold 0's) over HTTP: POST /recommend, GET /health, /model, /items/{id}, /items?q=,
    /history?user=, /docs, and a page to try the model at / (http://HOST:PORT/ in a browser)."""
    from aerec import deps

    deps.check_feature("serve")
    import uvicorn

    from aerec import serve as serving
    from aerec import ui
    from aerec.serve.app import create_app
    from aerec.serve.server import server_config

    path = serving.resolve_model_dir(model_dir)
    model = serving.load_model(path, announce=False, device=device)
    app = create_app(model, model_dir=path, max_batch=max_batch, batch_wait_ms=batch_wait_ms, max_body=max_body)
    if not _is_loopback(host):
        click.echo(f"warning: listening on {host}, beyond this machine; the service has no authentication", err=True)
    ui.info(f"serving {model.name} ({model.n_items} items, scored on {serving.scoring_device(model)}) from {path} "
            f"on http://{host}:{port} (a page to try it at /, API docs at /docs)")
    config = server_config(app, host=host, port=port, read_timeout=read_timeout, max_connections=limit_concurrency,
                           log_level=log_level, access_log=log_level == "debug")
    uvicorn.Server(config).run()


commands = [serve]
