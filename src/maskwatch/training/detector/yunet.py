"""YuNet-n in Keras with the published weights, a class head on its grid, SimOTA targets and a fine-tuning loop.

The network is written layer for layer after libfacedetection's YuNet-n (its ONNX file, batch norms folded
into the convolutions): a stem, ten depthwise-separable units with max-pooling, a three-level top-down neck
and a head shared per level with separate face-score, objectness, box and keypoint branches. Its weights are
read from the ONNX file's initializers; ``class`` branches (with_mask / without_mask / incorrect_mask) are
new. Input RGB 0..255 NHWC (the first convolution's input channels are reversed from YuNet's BGR), output
raw logits per prior in ``maskwatch.detectors.yunet.priors`` order, ``MASK_CHANNELS`` per prior.

Targets are assigned per step from the model's own predictions (SimOTA, as YuNet was trained): each face
takes the ``k`` candidate priors (inside the box or within 2.5 strides of its centre) of lowest cost, ``k``
from the summed IoU of its best ten predictions. The box loss is GIoU on the decoded boxes against the
annotators' boxes, so the fine-tune learns their convention (tighter than WIDER FACE's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskwatch.detectors.yunet import CLASSES, KEYPOINTS, MAP_CHANNELS, MASK_CHANNELS, priors
from maskwatch.errors import InputError

YUNET_ONNX = Path("../shared/weights/yunet/yunet_n_dynamic.onnx")
"""The published YuNet-n (libfacedetection.train, Apache-2.0), as this project's layout keeps it."""
BACKBONE = (
    ("b1a", 16, False),
    ("b1b", 64, False),
    ("b2a", 64, False),
    ("b2b", 64, True),
    ("b3a", 64, False),
    ("b3b", 64, True),
    ("b4a", 64, False),
    ("b4b", 64, True),
    ("b5a", 64, False),
    ("b5b", 64, False),
)
"""Depthwise-separable units after the stem's own unit: (name, channels, max-pool after it)."""
BRANCHES = (("cls", 1), ("bbox", 4), ("obj", 1), ("kps", 2 * KEYPOINTS))
"""Head branches in the ONNX file's order: a 1×1 convolution then a 3×3 one per channel, per level."""
TARGET_CHANNELS = 11
"""Per prior: positive, valid (not in an ignored face), IoU target, box x1 y1 x2 y2, class, prior x, y, stride."""
CENTRE_RADIUS = 2.5
"""A prior within this many strides of a face's centre is a candidate for it (YOLOX / YuNet)."""
TOP_IOU = 10


def build_model(classes: int = len(CLASSES)):
    """The Keras YuNet-n with a class branch per level: RGB 0..255 NHWC (sides multiples of 32) → N × P × 19."""
    import keras
    from keras import layers

    image = keras.Input((None, None, 3), name="image")

    def unit(x, channels: int, name: str):
        x = layers.Conv2D(channels, 1, name=f"{name}_pw")(x)
        x = layers.DepthwiseConv2D(3, padding="same", name=f"{name}_dw")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    x = layers.ZeroPadding2D(1, name="stem_pad")(image)
    x = layers.Conv2D(16, 3, strides=2, name="stem_conv")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = unit(x, 16, "b0")
    x = layers.MaxPooling2D(2, name="b0_pool")(x)
    feats = []
    for name, channels, pool in BACKBONE:
        x = unit(x, channels, name)
        if name in ("b3b", "b4b", "b5b"):
            feats.append(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    c8, c16, c32 = feats
    p32 = unit(c32, 64, "lat2")
    p16 = unit(layers.Add(name="lat1_add")([c16, layers.UpSampling2D(2, name="lat1_up")(p32)]), 64, "lat1")
    p8 = unit(layers.Add(name="lat0_add")([c8, layers.UpSampling2D(2, name="lat0_up")(p16)]), 64, "lat0")
    shared = [unit(p, 64, f"share{k}") for k, p in enumerate((p8, p16, p32))]
    outs: dict[str, list] = {}
    for branch, channels in BRANCHES:
        outs[branch] = []
        for k, s in enumerate(shared):
            t = layers.Conv2D(channels, 1, name=f"{branch}{k}_pw")(s)
            outs[branch].append(layers.DepthwiseConv2D(3, padding="same", name=f"{branch}{k}_dw")(t))
    levels = []
    for k, s in enumerate(shared):
        t = unit(s, 64, f"class{k}")
        logits = layers.Conv2D(classes, 1, name=f"class{k}_out")(t)
        level = layers.Concatenate(name=f"level{k}")(
            [outs["cls"][k], outs["obj"][k], outs["bbox"][k], outs["kps"][k], logits]
        )
        levels.append(layers.Reshape((-1, MAP_CHANNELS + classes), name=f"flat{k}")(level))
    out = layers.Concatenate(axis=1, name="maps")(levels)
    return keras.Model(image, out, name="yunet_mask")


def onnx_conv_order() -> list[str]:
    """Names of our convolutions in the order the YuNet ONNX file holds its Conv nodes."""
    names = ["stem_conv", "b0_pw", "b0_dw"]
    for name, _, _ in BACKBONE:
        names += [f"{name}_pw", f"{name}_dw"]
    for lat in ("lat2", "lat1", "lat0", "share0", "share1", "share2"):
        names += [f"{lat}_pw", f"{lat}_dw"]
    for branch, _ in BRANCHES:
        for k in range(3):
            names += [f"{branch}{k}_pw", f"{branch}{k}_dw"]
    return names


def read_yunet(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of every Conv node of a YuNet ONNX file, in graph order; a one-line error if it is not one."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: YuNet ONNX file not found")
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf raises its own errors for a file that is not ONNX
        raise InputError(f"{path}: not an ONNX file ({type(exc).__name__})") from None
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [
        (values[n.input[1]], values[n.input[2]])
        for n in graph.node
        if n.op_type == "Conv" and len(n.input) == 3 and n.input[1] in values
    ]
    if len(convs) != len(onnx_conv_order()):
        raise InputError(f"{path}: not YuNet-n ({len(convs)} convolutions, expected {len(onnx_conv_order())})")
    return convs


def load_yunet_weights(model, path: str | Path = YUNET_ONNX) -> int:
    """Set every YuNet layer of ``model`` from the ONNX file; returns how many were set (the class head stays)."""
    convs = read_yunet(path)
    for name, (weight, bias) in zip(onnx_conv_order(), convs):
        layer = model.get_layer(name)
        if name == "stem_conv":
            weight = weight[:, ::-1]  # YuNet reads BGR, ours RGB
        # depthwise (C, 1, kh, kw) → (kh, kw, C, 1); full (O, I, kh, kw) → (kh, kw, I, O)
        kernel = weight.transpose(2, 3, 0, 1) if name.endswith("_dw") else weight.transpose(2, 3, 1, 0)
        expected = tuple(layer.get_weights()[0].shape)
        if kernel.shape != expected:
            raise InputError(f"{path}: {name} has shape {kernel.shape}, the network wants {expected}")
        layer.set_weights([np.ascontiguousarray(kernel, np.float32), bias.astype(np.float32)])
    return len(convs)


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (G×4) with b (P×4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def decode_boxes(maps: np.ndarray, points: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Predicted boxes (P×4) from raw maps, as ``maskwatch.detectors.yunet.decode`` does (points = cells × stride)."""
    centre = points + maps[:, 2:4] * strides[:, None]
    size = np.exp(np.clip(maps[:, 4:6], -10.0, 10.0)) * strides[:, None]
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def assign(
    maps: np.ndarray, boxes: np.ndarray, labels: np.ndarray, ignore: np.ndarray, height: int, width: int
) -> np.ndarray:
    """SimOTA targets (P × TARGET_CHANNELS) of one image from the model's raw maps and its boxes."""
    cells, strides = priors(height, width)
    points = cells * strides[:, None]
    target = np.zeros((len(points), TARGET_CHANNELS), np.float32)
    target[:, 1] = 1.0
    target[:, 8:10] = points
    target[:, 10] = strides
    for box in boxes[ignore.astype(bool)]:  # priors inside an ignored face are neither face nor background
        inside = (
            (points[:, 0] >= box[0]) & (points[:, 0] <= box[2]) & (points[:, 1] >= box[1]) & (points[:, 1] <= box[3])
        )
        target[inside, 1] = 0.0
    keep = ~ignore.astype(bool) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    gt, gt_labels = boxes[keep].astype(np.float32), labels[keep]
    if len(gt) == 0:
        return target
    px, py = points[:, 0], points[:, 1]
    in_box = (px[None] > gt[:, :1]) & (px[None] < gt[:, 2:3]) & (py[None] > gt[:, 1:2]) & (py[None] < gt[:, 3:4])
    cx, cy = (gt[:, 0:1] + gt[:, 2:3]) / 2, (gt[:, 1:2] + gt[:, 3:4]) / 2
    radius = CENTRE_RADIUS * strides[None]
    in_centre = (np.abs(px[None] - cx) < radius) & (np.abs(py[None] - cy) < radius)
    candidate = in_box | in_centre
    pred = decode_boxes(maps, points, strides)
    ious = _box_iou(gt, pred) * candidate
    score = np.sqrt(1.0 / (1.0 + np.exp(-maps[:, 0])) / (1.0 + np.exp(-maps[:, 1])))
    cls_cost = -np.log(np.clip(score, 1e-6, 1.0))[None]
    cost = cls_cost + 3.0 * -np.log(ious + 1e-8) + 1e5 * ~(in_box & in_centre) + 1e9 * ~candidate
    matching = np.zeros_like(candidate)
    top = np.sort(ious, axis=1)[:, -TOP_IOU:]
    ks = np.clip(top.sum(1).astype(int), 1, None)
    for g in range(len(gt)):
        chosen = np.argsort(cost[g], kind="stable")[: ks[g]]
        chosen = chosen[candidate[g, chosen]]
        if len(chosen) == 0:  # no prior near a face (cut at the border): the nearest one at stride 8
            chosen = np.array([np.argmin((px - cx[g, 0]) ** 2 + (py - cy[g, 0]) ** 2)])
        matching[g, chosen] = True
    shared = matching.sum(0) > 1
    if shared.any():  # a prior chosen by several faces goes to the cheapest
        best = np.argmin(np.where(matching[:, shared], cost[:, shared], np.inf), axis=0)
        matching[:, shared] = False
        matching[best, np.flatnonzero(shared)] = True
    owner = matching.argmax(0)
    positive = matching.any(0)
    idx = np.flatnonzero(positive)
    target[idx, 0] = 1.0
    target[idx, 1] = 1.0
    target[idx, 2] = ious[owner[idx], idx]
    target[idx, 3:7] = gt[owner[idx]]
    target[idx, 7] = gt_labels[owner[idx]]
    return target


def loss_parts(target, pred, box_weight: float = 5.0, class_weight: float = 1.0) -> dict:
    """Objectness BCE over valid priors, face-score BCE against the IoU and GIoU box loss on positives, class
    cross-entropy on positives; each summed and divided by the positives (as YOLOX/YuNet do). ``keras.ops``."""
    from keras import ops

    pos, valid, iou_t = target[..., 0], target[..., 1], target[..., 2]
    n = ops.maximum(ops.sum(pos), 1.0)

    def bce(logit, label):
        return ops.softplus(logit) - logit * label

    obj = ops.sum(bce(pred[..., 1], pos) * valid) / n
    face = ops.sum(bce(pred[..., 0], iou_t) * pos) / n
    stride = target[..., 10:11]
    centre = target[..., 8:10] + pred[..., 2:4] * stride
    half = ops.exp(ops.clip(pred[..., 4:6], -10.0, 10.0)) * stride / 2
    p1, p2 = centre - half, centre + half
    g1, g2 = target[..., 3:5], target[..., 5:7]
    inter = ops.prod(ops.maximum(ops.minimum(p2, g2) - ops.maximum(p1, g1), 0.0), axis=-1)
    union = ops.prod(p2 - p1, axis=-1) + ops.prod(g2 - g1, axis=-1) - inter
    iou = inter / ops.maximum(union, 1e-9)
    hull = ops.prod(ops.maximum(p2, g2) - ops.minimum(p1, g1), axis=-1)
    giou = iou - (hull - union) / ops.maximum(hull, 1e-9)
    box = ops.sum((1.0 - giou) * pos) / n
    ce = ops.sparse_categorical_crossentropy(
        ops.cast(target[..., 7], "int32"), pred[..., MAP_CHANNELS:MASK_CHANNELS], from_logits=True
    )
    cls = ops.sum(ce * pos) / n
    total = obj + face + box_weight * box + class_weight * cls
    return {"loss": total, "obj": obj, "face": face, "box": box, "cls": cls}


def loss_part(name: str):
    def part(target, pred):
        return loss_parts(target, pred)[name]

    part.__name__ = name
    return part


LOSS_PARTS = ("obj", "face", "box", "cls")
