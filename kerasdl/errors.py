"""User-facing errors: each one is shown to the user as a single clear line.

Messages follow one pattern: what was expected, what was received, what to do.
The CLI turns any `KerasdlError` into exit status 1 and that one line.
"""


class KerasdlError(Exception):
    """Base class of every error kerasdl reports to a user.

    Args:
        message: The one line shown to the user.
        argument: The Python argument the error is about (`"image_size"`),
            when it is about one; the CLI then reports it against the flag
            that sets it (`--image-size`) as a usage error. Defaults to
            `None`.
    """

    def __init__(self, message: str = "", *, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class DataError(KerasdlError):
    """The image source is missing, malformed, or holds no usable images."""


class RecipeError(KerasdlError):
    """A recipe, backbone or option name is unknown, or a value is invalid."""


class WeightsError(KerasdlError):
    """Pretrained weights cannot be found, fetched, or do not fit the backbone."""


class RunFolderError(KerasdlError):
    """The output folder cannot be used (it holds a run, or is not writable)."""


class ExportError(KerasdlError):
    """A model cannot be exported, or the exported file fails its parity check."""


class ModelFileError(KerasdlError):
    """A model file cannot be loaded, or does not match the data."""


class ExportRejectedError(ExportError):
    """An exported file lost too much accuracy; it was kept as `*.rejected.*`.

    Attributes:
        parity: `{file name: parity dict}` of every file checked.
    """

    def __init__(self, message: str, *, parity: dict | None = None):
        super().__init__(message)
        self.parity = parity or {}


class CheckpointError(KerasdlError):
    """A run cannot be resumed: no checkpoint, a damaged one, or a different run."""


class TrainingError(KerasdlError):
    """Training stopped and cannot go on as asked (for example, the loss became NaN)."""
