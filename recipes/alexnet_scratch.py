"""AlexNet (2012) from scratch: five convolutions, three fully connected layers, ReLU, dropout."""

from kerasdl.recipe import HeadConfig, scratch_recipe


def recipe():
    # The paper's dropout of 0.5 before the output layer (fc8) is the head's.
    return scratch_recipe(
        "alexnet-scratch",
        "alexnet",
        description="AlexNet (2012) from scratch: 5 conv + 3 FC layers, ReLU, dropout; 227 px.",
        learning_rate=1e-4,
        head=HeadConfig(dropout=0.5),
    )
