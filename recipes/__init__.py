"""kerasdl's built-in recipes, installed as the package `kerasdl.recipes`.

Each module defines `recipe()` returning a `Recipe` named after the module
(`resnet50_transfer.py` is `resnet50-transfer`); `kerasdl.recipe.registry`
lists every module here, so a new recipe is one new file. Other packages add
recipes through the `kerasdl.recipes` entry-point group.
"""
