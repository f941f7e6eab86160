"""`run_recipe`: what `kerasdl run` calls, and where the choice between one run and k folds is made.

```
run_recipe(recipe, source, RunOptions)
  ├─ recipe.data.folds == 0 ─> single.run_single(recipe, source, options)
  └─ recipe.data.folds == K ─> kfold.run_folds: data.folds.plan_folds deals the folds once,
                               then for k in 1..K single.run_single(fold recipe, source,
                               fold options, split=plan.split(k)), then the ensemble
```
"""


from __future__ import annotations

import dataclasses
from typing import Any

from kerasdl.app.kfold import run_folds
from kerasdl.app.options import RunOptions
from kerasdl.app.run_parts import RunResult
from kerasdl.app.single import run_single


def run_recipe(recipe, data_source: str, options: RunOptions | None = None, **keywords: Any) -> RunResult:
    """Runs a recipe end to end and writes its run folder: one run, or with `recipe.data.folds`
    of 2 or more a k-fold cross-validation (`kerasdl.app.kfold`).

    Args:
        recipe: A `Recipe` (already overridden as wanted).
        data_source: The image source (folder, `sample`, `csv:FILE`, `tfds:NAME`).
        options: A `RunOptions`: output folder, exports, resume, time
            budget, training and runtime options... Defaults to `None`
            (`RunOptions()`).
        **keywords: `RunOptions` fields, instead of `options` or over them,
            e.g. `output_dir="runs/faces", export=[]`.

    Returns:
        A `RunResult`.

    Raises:
        KerasdlError: for bad input, before any training and before the run
            folder is created or an earlier run in it deleted.
        RunFolderError: for an `output_dir` that holds files of the user's,
            or is the data folder, inside it or above it.
        ExportError: when an export fails or is rejected by its parity check;
            raised after the run folder is complete (model, metrics, report).

    Example:
    ```python
    from kerasdl import get_recipe, run_recipe
    result = run_recipe(get_recipe("mobilenetv2-transfer"), "my_images/", output_dir="runs/mine")
    print(result.metrics["accuracy"])
    ```
    """
    options = dataclasses.replace(options or RunOptions(), **keywords)
    if recipe.data.folds:  # k-fold: one run per fold, then their ensemble
        return run_folds(recipe, data_source, options)
    return run_single(recipe, data_source, options)


__all__ = ["run_recipe"]
