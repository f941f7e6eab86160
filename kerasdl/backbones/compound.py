"""EfficientNet's compound scaling rule, as plain arithmetic (no Keras needed).

EfficientNet-B0 scaled by coefficient `phi`: depth 1.2^phi, width 1.1^phi,
resolution 1.15^phi (224 px at phi=0). `kerasdl.backbones.classic` builds
the network; this module only computes its sizes, so listings need no
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from kerasdl.errors import RecipeError

EFFICIENTNET_BASE_SIZE = 224
# The paper's grid-searched constants: depth, width and resolution per unit of phi.
COMPOUND_ALPHA, COMPOUND_BETA, COMPOUND_GAMMA = 1.2, 1.1, 1.15
# Keras Applications' EfficientNet-B0..B7: (width, depth, resolution).
OFFICIAL_EFFICIENTNETS = {
    "B0": (1.0, 1.0, 224), "B1": (1.0, 1.1, 240), "B2": (1.1, 1.2, 260), "B3": (1.2, 1.4, 300),
    "B4": (1.4, 1.8, 380), "B5": (1.6, 2.2, 456), "B6": (1.8, 2.6, 528), "B7": (2.0, 3.1, 600),
}
MIN_RESOLUTION = 32


@dataclasses.dataclass(frozen=True)
class CompoundScaling:
    """EfficientNet-B0 scaled by the compound coefficient phi.

    Attributes:
        phi: The compound coefficient.
        depth: Depth multiplier, 1.2^phi (layers per stage).
        width: Width multiplier, 1.1^phi (channels per layer).
        resolution: Input size, round(224 * 1.15^phi) pixels.
        closest: The official EfficientNet (`"B0"` .. `"B7"`) nearest to
            this one, by the summed absolute log-ratios of the three factors.
    """

    phi: float
    depth: float
    width: float
    resolution: int
    closest: str


def compound_scaling(phi: Any) -> CompoundScaling:
    """Returns the depth, width and resolution of EfficientNet at `phi`.

    Args:
        phi: The compound coefficient, a number >= 0.

    Returns:
        A `CompoundScaling`.

    Raises:
        RecipeError: if phi is not a number, is negative, or gives a
            resolution below 32 px.

    Example:
    ```python
    compound_scaling(1)  # depth 1.2, width 1.1, resolution 258, closest B2
    ```
    """
    if isinstance(phi, bool) or not isinstance(phi, (int, float)) or not math.isfinite(phi):
        raise RecipeError(
            f"Expected backbone.phi to be a number such as 0, 1 or 2.5. Received: {phi!r}. "
            "Set backbone.phi=1 in the recipe."
        )
    if phi < 0:
        raise RecipeError(
            f"Expected backbone.phi >= 0 (B0 is phi=0; the rule scales up). Received: {phi}. "
            "Set backbone.phi to 0 or larger in the recipe."
        )
    depth, width = COMPOUND_ALPHA**phi, COMPOUND_BETA**phi
    resolution = round(EFFICIENTNET_BASE_SIZE * COMPOUND_GAMMA**phi)
    if resolution < MIN_RESOLUTION:
        raise RecipeError(
            f"Expected backbone.phi to give a resolution of at least {MIN_RESOLUTION} px. "
            f"Received: phi={phi}, {resolution} px. Pass a larger phi."
        )

    def distance(official):
        w, d, r = official
        return abs(math.log(width / w)) + abs(math.log(depth / d)) + abs(math.log(resolution / r))

    closest = min(OFFICIAL_EFFICIENTNETS, key=lambda key: distance(OFFICIAL_EFFICIENTNETS[key]))
    return CompoundScaling(phi=phi, depth=depth, width=width, resolution=resolution, closest=closest)


def compound_resolution(options: dict[str, Any]) -> int:
    return compound_scaling(options.get("phi", 0)).resolution
