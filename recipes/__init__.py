"""kerasdl's built-in recipes, installed as the package `kerasdl.recipes`.

Each module defines `recipe()` and is listed in setup.cfg's
`kerasdl.recipes` entry-point group under the name users type.
"""
