"""The `kerasdl` command group: its global options (verbosity, backend) and the console they set.

Each module of `kerasdl.cli` registers its commands on `main`; the package
imports them all, so `kerasdl.cli.main` is the whole command line.
"""


from __future__ import annotations

import click

import kerasdl
from kerasdl._util.backend import select_backend
from kerasdl.cli.console import ConsoleOptions, setup_console
from kerasdl.cli.flags import in_flags
from kerasdl.errors import KerasdlError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kerasdl")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show TensorFlow's, absl's and CUDA's own log lines and every Python "
                   "warning with its source.")
@click.option("-q", "--quiet", is_flag=True,
              help="Show only warnings, errors and each command's result (no progress or status lines).")
@click.option("--backend", default=None, metavar="tensorflow|jax|torch",
              help="Keras backend of the command (default: KERAS_BACKEND, else tensorflow). Export "
                   "runs on TensorFlow, in a subprocess of its own when the backend is another.")
@click.pass_context
def main(context, verbose, quiet, backend):
    """Train, evaluate and export image classifiers by transfer learning."""
    if verbose and quiet:
        raise click.BadParameter("--verbose shows more, --quiet less: pick one.", param_hint="--quiet")
    try:
        select_backend(backend)  # before Keras loads
    except KerasdlError as error:
        raise click.ClickException(in_flags(str(error))) from None
    context.obj = ConsoleOptions(verbose=verbose, quiet=quiet)
    setup_console(context.obj, user_tf_log_level=getattr(kerasdl, "_USER_TF_CPP_MIN_LOG_LEVEL", None),
                  in_flags=in_flags)


def console() -> ConsoleOptions | None:
    """The global options' console settings of the running command (`None` outside one)."""
    context = click.get_current_context(silent=True)
    return context.find_object(ConsoleOptions) if context else None
