"""Grad-CAM: where in an image a classifier looks for a class.

Grad-CAM (Selvaraju et al. 2017; keras.io's "Grad-CAM class activation
visualization") weighs each channel of a convolutional feature map by the
mean gradient of a class's score with respect to it, sums the channels,
keeps the positive part and scales it to [0, 1]: the heatmap.

The feature map is found from the model, not named by hand: the output of
the last layer whose output is a 4-D map with more channels than the
image (so not the image or its preprocessing). For a kerasdl classifier
that is its nested backbone's output; for a backbone that ends in a vector
(AlexNet's fc7) the search goes inside it; for a head on several blocks
(`head.pooling="blocks"`) the maps are all the blocks' the backbone gives,
and their heatmaps are added on the finest map's cells. The model is then cut there into
two Keras models, images -> feature map and feature map -> class scores, and
only the second, small part is differentiated, with the backend's own
autodiff (`tf.GradientTape`, `jax.grad`, `torch.autograd`). The score is the
class's logit when the model ends in a softmax Dense layer (as kerasdl's
`predictions` does), so a confident prediction still has gradients.

An ensemble (a model whose output is the `Average` of nested classifiers
all called on its image, as `kerasdl.models.ensemble.average_models` makes
a k-fold run's model, or that one classifier alone) has no one feature map
on the way to its output: each member is explained at its own last feature
map, for the class the ensemble predicts, and the ensemble's heatmap is the
mean of its members' heatmaps.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from kerasdl.errors import ModelFileError

BACKENDS = ("tensorflow", "jax", "torch")


@dataclasses.dataclass
class Explanation:
    """Grad-CAM heatmaps of a batch of images.

    Attributes:
        heatmaps: `(n, h, w)` floats in [0, 1] at the feature map's
            resolution (1 where the class's evidence is strongest; for an
            ensemble, its members' mean, whose peak is below 1 where they
            look at different places).
        probabilities: `(n, num_classes)` predicted probabilities.
        class_indices: `(n,)` the class each heatmap is for.
        layer: The feature map's layer, nested names joined by `/` (an
            ensemble's: `fold_1..fold_3/backbone` when its members' maps are
            the same layer, else each member's, joined by `, `).
    """

    heatmaps: np.ndarray
    probabilities: np.ndarray
    class_indices: np.ndarray
    layer: str


def _graph_nodes(model) -> dict[int, Any]:
    """`{id(layer): its call node}` in the graph of `model` (a functional or Sequential model).

    A layer's `.output` is not enough: a nested model's is the one of its own
    graph, and a loaded model's layers may have been called in other graphs
    while it was rebuilt; the graph's own nodes say which call is its.
    """
    graph = getattr(model, "_functional", None) or model  # a Sequential keeps its graph there
    by_depth = getattr(graph, "_nodes_by_depth", None) or {}
    return {id(node.operation): node for nodes in by_depth.values() for node in nodes}


def _graph_output(nodes: dict[int, Any], layer):
    node = nodes.get(id(layer))
    return node.output_tensors[0] if node is not None and len(node.output_tensors) == 1 else None


def _graph_outputs(nodes: dict[int, Any], layer) -> list:
    node = nodes.get(id(layer))
    return list(node.output_tensors) if node is not None else []


def _graph_input(nodes: dict[int, Any], layer):
    node = nodes.get(id(layer))
    return node.input_tensors[0] if node is not None and len(node.input_tensors) == 1 else None


def _is_feature_map(tensor, channels: int) -> bool:
    return tensor is not None and len(tensor.shape) == 4 and (tensor.shape[-1] or 0) > channels


def _find_path(model, channels: int) -> list | None:
    """`[(model, layer), (layer, inner layer), ...]` down to the last feature map, or `None`."""
    import keras

    nodes = _graph_nodes(model)
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        output = _graph_output(nodes, layer)
        if _is_feature_map(output, channels):
            return [(model, layer)]
        outputs = _graph_outputs(nodes, layer)
        if len(outputs) > 1 and all(_is_feature_map(tensor, channels) for tensor in outputs):
            return [(model, layer)]  # a backbone giving several blocks' maps (head.pooling="blocks")
        if isinstance(layer, keras.Model) and len(layer.inputs) == 1 and len(layer.outputs) == 1:
            inner = _find_path(layer, channels)
            if inner is not None:
                return [(model, layer)] + inner
    return None


def _cut(inputs, outputs) -> Callable:
    """A function from `inputs` to `outputs` of one graph (identity when they are the same tensor)."""
    import keras

    if inputs is outputs:
        return lambda x: x
    part = keras.Model(inputs, outputs)
    return lambda x: part(x, training=False)


def _split(path: list, end) -> tuple[Callable, Callable]:
    """`(to_features, to_end)` along `path`; `end` is the tensor of `path[0][0]`'s graph to stop at."""
    model, layer = path[0]
    start, nodes = model.inputs[0], _graph_nodes(model)
    if len(path) == 1:
        feature = _graph_output(nodes, layer)
        feature = _graph_outputs(nodes, layer) if feature is None else feature
        return _cut(start, feature), _cut(feature, end)
    before, after = _cut(start, _graph_input(nodes, layer)), _cut(_graph_output(nodes, layer), end)
    inner_features, inner_rest = _split(path[1:], layer.outputs[0])
    return (lambda x: inner_features(before(x))), (lambda f: after(inner_rest(f)))


def _score_head(model) -> tuple[Any, Callable | None]:
    """The tensor to stop at and how to turn it into logits: a softmax Dense layer at the end is
    applied without its softmax; any other output is used as it is."""
    import keras

    last, nodes = model.layers[-1], _graph_nodes(model)
    hidden = _graph_input(nodes, last)
    if (isinstance(last, keras.layers.Dense) and getattr(last.activation, "__name__", "") == "softmax"
            and hidden is not None):
        def logits(features):
            scores = keras.ops.matmul(features, last.kernel)
            return scores + last.bias if last.use_bias else scores

        return hidden, logits
    return model.outputs[0], None


class GradCam:
    """Grad-CAM heatmaps of a Keras image classifier.

    Args:
        model: A `keras.Model` with one image input and one probability
            output, such as any classifier `kerasdl.build_classifier` builds
            (a `.keras` file loaded with `keras.saving.load_model`), or an
            ensemble of them (`kerasdl.models.ensemble.average_models`, a
            k-fold run's model.keras), whose heatmap is its members' mean.

    Raises:
        ModelFileError: if the model (or a member of the ensemble) has no
            convolutional feature map to explain.

    Example:
    ```python
    cam = GradCam(keras.saving.load_model("runs/x/model.keras"))
    explanation = cam(images)  # images: (n, size, size, 3) in [0, 255]
    explanation.heatmaps.shape  # (n, 7, 7) for a 224 px EfficientNet-Lite0
    ```
    """

    def __init__(self, model):
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ModelFileError(
                f"Expected a classifier with one image input and one output for Grad-CAM. Received: "
                f"{model.name} with {len(model.inputs)} inputs and {len(model.outputs)} outputs."
            )
        channels = model.inputs[0].shape[-1] or 3
        members = _ensemble_members(model)
        self.model = model
        self._parts = [_Explained(member, channels) for member in (members or [model])]
        if members is None:
            self.layer = self._parts[0].layer
        else:
            self.layer = _ensemble_layer([member.name for member in members], [p.layer for p in self._parts])

    def __call__(self, images, class_index: int | np.ndarray | None = None) -> Explanation:
        """Heatmaps of a batch of images.

        Args:
            images: `(n, size, size, 3)` RGB images in [0, 255], as the
                model takes them.
            class_index: The class to explain: one index for all images, one
                per image, or `None` for each image's predicted class (an
                ensemble's, for all its members). Defaults to `None`.

        Returns:
            An `Explanation`.

        Raises:
            ModelFileError: on a Keras backend whose gradients Grad-CAM
                cannot take here.
        """
        import keras

        images = keras.ops.convert_to_tensor(np.asarray(images, dtype="float32"))
        features = [part.to_features(images) for part in self._parts]
        if len(self._parts) > 1 and class_index is None:  # the ensemble's class, not each member's own
            class_index = _chosen(np.mean([part.probabilities(keras.ops.convert_to_numpy(part.to_scores(f)))
                                           for part, f in zip(self._parts, features, strict=True)], axis=0), None)
        heatmaps, probabilities = [], []
        for part, feature in zip(self._parts, features, strict=True):
            gradients, scores = _gradients(part.to_scores, feature, class_index)
            probabilities.append(part.probabilities(scores))
            arrays = ([keras.ops.convert_to_numpy(f) for f in feature] if isinstance(feature, (list, tuple))
                      else keras.ops.convert_to_numpy(feature))
            heatmaps.append(heatmaps_from(arrays, gradients))
        probabilities = np.mean(probabilities, axis=0)  # an Average layer's output: the members' mean
        return Explanation(heatmaps=_mean_heatmap(heatmaps), probabilities=probabilities,
                           class_indices=_chosen(probabilities, class_index), layer=self.layer)


class _Explained:
    """One classifier cut at its last feature map: `to_features`, `to_scores` and its layer's name."""

    def __init__(self, model, channels: int):
        path = _find_path(model, channels)
        if path is None:
            raise ModelFileError(
                f"Expected a model with a convolutional feature map (a 4-D output with more than "
                f"{channels} channels) for Grad-CAM. Received: {model.name}, which has none. "
                "Explain a convolutional classifier."
            )
        self.layer = "/".join(layer.name for _, layer in path)
        end, self._logits = _score_head(model)
        try:
            to_features, to_end = _split(path, end)
        except ValueError as error:  # a map Keras cannot cut the model at (not on the way to its output)
            raise ModelFileError(
                f"Expected a classifier whose last feature map leads to its output for Grad-CAM. Received: "
                f"{model.name}, whose map {self.layer} does not ({str(error).splitlines()[0][:160]}). "
                "Explain a classifier built by kerasdl (or one member of an ensemble) instead."
            ) from None
        to_scores = to_end if self._logits is None else (lambda f: self._logits(to_end(f)))
        self.to_features, self.to_scores = _compiled(to_features), _compiled(to_scores)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        return _probabilities(np.asarray(scores), softmax=self._logits is not None)


def _ensemble_members(model) -> list | None:
    """The classifiers an ensemble averages (or wraps, when it has one), or `None` for any other model.

    An ensemble's layers are its input, nested models each called on that
    input, and, for two or more, one `Average` layer of all their outputs
    that is the model's output (`kerasdl.models.ensemble.average_models`).
    """
    import keras

    nodes = _graph_nodes(model)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    members = [layer for layer in layers if isinstance(layer, keras.Model)]
    others = [layer for layer in layers if not isinstance(layer, keras.Model)]
    outputs = [_graph_output(nodes, member) for member in members]
    if (not members or len(others) > 1 or any(output is None for output in outputs)
            or any(_graph_input(nodes, member) is not model.inputs[0] for member in members)):
        return None
    if not others:
        return members if len(members) == 1 and outputs[0] is model.outputs[0] else None
    average = nodes.get(id(others[0]))
    if (not isinstance(others[0], keras.layers.Average) or average is None
            or _graph_output(nodes, others[0]) is not model.outputs[0]
            or sorted(map(id, average.input_tensors)) != sorted(map(id, outputs))):
        return None
    return members


def _ensemble_layer(names: list[str], layers: list[str]) -> str:
    """`fold_1..fold_3/backbone` for members explained at the same layer, else each member's."""
    if len(set(layers)) == 1 and len(names) > 1:
        return f"{names[0]}..{names[-1]}/{layers[0]}"
    return ", ".join(f"{name}/{layer}" for name, layer in zip(names, layers, strict=True))


def _mean_heatmap(heatmaps: list[np.ndarray]) -> np.ndarray:
    """The members' heatmaps' mean, each first brought to the finest one's cells (bilinearly)."""
    if len(heatmaps) == 1:
        return heatmaps[0]
    from PIL import Image

    height, width = max(heatmap.shape[1:] for heatmap in heatmaps)
    resized = [heatmap if heatmap.shape[1:] == (height, width) else np.stack([
        np.asarray(Image.fromarray(one, mode="F").resize((width, height), Image.BILINEAR)) for one in heatmap])
        for heatmap in heatmaps]
    return np.clip(np.mean(resized, axis=0), 0.0, 1.0).astype(np.float32)


def _compiled(function: Callable) -> Callable:
    """`function` compiled by the backend (op by op, a backbone costs several times more), where it can be."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(function, reduce_retracing=True)
    return function


def _chosen(probabilities: np.ndarray, class_index) -> np.ndarray:
    if class_index is None:
        return probabilities.argmax(axis=1)
    return np.broadcast_to(np.asarray(class_index, dtype=int), (len(probabilities),)).copy()


def _probabilities(scores: np.ndarray, *, softmax: bool) -> np.ndarray:
    if not softmax:
        return scores.astype(np.float64)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def heatmaps_from(features, gradients) -> np.ndarray:
    """Grad-CAM's last step: channels weighted by their mean gradient, summed, positive part, scaled.

    Several feature maps (a head on several blocks' pooled maps) each give
    such a map; each is spread over the finest map's cells (a coarse cell's
    value shared by the fine cells it covers, so each map keeps its total),
    and they are added before the positive part is taken: for an averaging
    head, a cell's value is then its share of the class's score.

    Args:
        features: `(n, h, w, channels)` feature maps, or a list of them.
        gradients: The class score's gradients with respect to them.

    Returns:
        `(n, h, w)` heatmaps in [0, 1], at the finest map's resolution (all
        zeros where no part of the image speaks for the class).
    """
    if not isinstance(features, (list, tuple)):
        features, gradients = [features], [gradients]
    side = max(feature.shape[1] for feature in features)
    total = 0.0
    for feature, gradient in zip(features, gradients, strict=True):
        weighted = (feature * gradient.mean(axis=(1, 2), keepdims=True)).sum(axis=-1)
        factor = side // weighted.shape[1]
        total = total + np.repeat(np.repeat(weighted, factor, axis=1), factor, axis=2) / factor**2
    maps = np.maximum(total, 0.0)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0).astype(np.float32)


def _gradients(to_scores: Callable, features, class_index) -> tuple[np.ndarray, np.ndarray]:
    """`(d score / d features, scores)` as NumPy arrays, with the backend's autodiff.

    The score of each image is that of `class_index` (or, when `None`, of
    its highest-scoring class).
    """
    import keras

    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise ModelFileError(
            f"Expected the tensorflow, jax or torch Keras backend for Grad-CAM's gradients. "
            f"Received: {backend}. Set KERAS_BACKEND=tensorflow."
        )
    return {"tensorflow": _tensorflow_gradients, "jax": _jax_gradients,
            "torch": _torch_gradients}[backend](to_scores, features, class_index)


def _one_hot(scores: np.ndarray, class_index) -> np.ndarray:
    chosen = _chosen(scores, class_index)
    return np.eye(scores.shape[1], dtype="float32")[chosen]


def _tensorflow_gradients(to_scores, features, class_index):
    import tensorflow as tf

    features = tf.nest.map_structure(tf.convert_to_tensor, features)
    with tf.GradientTape() as tape:
        tape.watch(features)
        scores = to_scores(features)
        mask = _one_hot(scores.numpy(), class_index)
        chosen = tf.reduce_sum(tf.cast(scores, tf.float32) * mask)
    gradients = tf.nest.map_structure(lambda gradient: gradient.numpy(), tape.gradient(chosen, features))
    return gradients, scores.numpy()


@functools.lru_cache(maxsize=32)  # an ensemble's members each have one
def _jax_gradient_function(to_scores):
    """`(features, mask) -> d sum(scores * mask) / d features`, compiled once per model."""
    import jax
    import jax.numpy as jnp

    return jax.jit(jax.grad(lambda features, mask: jnp.sum(to_scores(features).astype("float32") * mask)))


def _jax_gradients(to_scores, features, class_index):
    import jax

    scores = np.asarray(to_scores(features))
    gradients = _jax_gradient_function(to_scores)(features, _one_hot(scores, class_index))
    return jax.tree_util.tree_map(np.asarray, gradients), scores


def _torch_gradients(to_scores, features, class_index):
    import torch

    several = isinstance(features, (list, tuple))
    leaves = [f.detach().clone().requires_grad_(True) for f in (features if several else [features])]
    scores = to_scores(leaves if several else leaves[0])
    mask = torch.as_tensor(_one_hot(scores.detach().cpu().numpy(), class_index), device=scores.device)
    gradients = [g.detach().cpu().numpy() for g in torch.autograd.grad((scores.float() * mask).sum(), leaves)]
    return (gradients if several else gradients[0]), scores.detach().cpu().numpy()
