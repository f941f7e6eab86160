"""`kerasdl predict` and `demo`: a model's answers, as a CSV or on a local web page.

`kerasdl.app` modules are imported inside the commands, so `kerasdl --help`
loads no Keras.
"""


from __future__ import annotations

import click

from kerasdl._util.console import plural
from kerasdl.cli.console import quietly
from kerasdl.cli.flags import reports_errors
from kerasdl.cli.group import console, main
from kerasdl.cli.options import TTA_OPTION


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("source", metavar="SRC")
@click.option("--output", type=click.Path(), default="predictions.csv", show_default=True,
              help="CSV file to write.")
@click.option("--format", "csv_format", type=click.Choice(["table", "submission"]), default="table",
              show_default=True,
              help="table: path, predicted class, one probability per class. submission (two "
                   "classes): img_name,y_pred with the probability of the second class.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per batch.")
@TTA_OPTION
@reports_errors
def predict(model_path, source, output, csv_format, batch_size, tta):
    """Predict every image in SRC with MODEL.

    SRC is a folder (searched recursively), an image file, or @list.txt: a
    file listing images one a line, relative to the list file's folder.
    --output must lie outside the folders of the images.
    """
    from kerasdl.app.model_files import predict_images

    with quietly(console()):
        counts = predict_images(model_path, source, output, batch_size=batch_size, csv_format=csv_format,
                                tta=tta)
    click.echo(f"Predicted {plural(counts['predicted'], 'image')} ({counts['skipped']} skipped). Wrote {output}")


@main.command()
@click.argument("source", metavar="RUN_DIR|MODEL", type=click.Path())
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default is reachable from this machine only.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Largest image accepted, in MB.")
@reports_errors
def demo(source, port, host, max_upload_mb):
    """Serve a web page that classifies the images you drop on it.

    With a run folder it runs export/model.tflite (what ships) when there is
    one, else model.keras; a model file (.keras, .tflite, .onnx, SavedModel)
    runs as it is. Probabilities are those `kerasdl predict` gives. Ctrl-C stops.
    """
    from kerasdl.app.demo import LOOPBACK_HOSTS, DemoOptions, make_demo_server

    options = DemoOptions(host=host, port=port, max_upload_bytes=int(max_upload_mb * 1e6),
                          limit_setting="--max-upload-mb")
    if host not in LOOPBACK_HOSTS:
        click.echo(f"Warning: listening on {host}: other machines that reach it can use the demo.", err=True)
    server = make_demo_server(source, options)
    info = server.app.info()
    click.echo(f"Demo of {info['model']} ({info['kind']}, {len(info['class_names'])} classes: "
               f"{', '.join(info['class_names'])})")
    click.echo(f"Open {server.url} in a browser; Ctrl-C stops.", nl=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        server.server_close()
