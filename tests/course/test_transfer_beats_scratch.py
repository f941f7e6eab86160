"""On real data, transfer from real ImageNet weights beats training from scratch (issues 2 and 8)."""

from __future__ import annotations

import pytest

from tests.support import MOBILENET_025_NO_TOP, SHARED_DATA, requires_shared

HYMENOPTERA = SHARED_DATA / "hymenoptera"


@pytest.mark.slow
@requires_shared(HYMENOPTERA, MOBILENET_025_NO_TOP)
def test_transfer_from_imagenet_beats_scratch_on_hymenoptera(tmp_path):
    from kerasdl.course.experiment import transfer_vs_scratch

    results = transfer_vs_scratch(
        str(HYMENOPTERA), backbone="mobilenet", backbone_options={"alpha": 0.25},
        weights=str(MOBILENET_025_NO_TOP), image_size=96, fractions=[0.5], epochs=3,
        batch_size=16, output_dir=tmp_path,
    )
    accuracy = {result.arm: result.best_val_accuracy for result in results}
    # ants vs. bees: 153 validation images, the larger class is 54% of them.
    assert accuracy["transfer"] > 0.6
    assert accuracy["transfer"] > accuracy["scratch"] + 0.05
