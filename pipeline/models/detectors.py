"""Object detectors from torchvision, built untrained (weights come from the user).

Every detector takes a list of float [3, H, W] RGB tensors in [0, 1], resizes
and normalizes them itself (GeneralizedRCNNTransform), and returns boxes in
pixels of the frames it was given, so `detect` needs no pre- or post-scaling.

Box convention (torchvision's): continuous pixel coordinates x1, y1, x2, y2
with the origin at the top-left corner of the frame; a box covering pixel
columns 10..19 has x1=10, x2=20, so a full-frame box of a W x H frame is
(0, 0, W, H). Resizing a box is then a plain multiplication, with no
half-pixel offset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    import torch

DETECTORS = ("fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn_v2",
             "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large")

# The families name their post-processing keywords differently (verified against
# torchvision 0.29's FasterRCNN, RetinaNet, FCOS and SSD constructors).
_SCORE_KWARG = {"fasterrcnn": "box_score_thresh", "retinanet": "score_thresh",
                "fcos": "score_thresh", "ssdlite320": "score_thresh"}
_MAX_BOXES_KWARG = {"fasterrcnn": "box_detections_per_img", "retinanet": "detections_per_img",
                    "fcos": "detections_per_img", "ssdlite320": "detections_per_img"}

# Anchors per feature-map location of the dense heads, whose classification conv
# has anchors * num_classes output channels (RetinaNet: 3 sizes x 3 ratios; FCOS: 1;
# SSDlite: 2 + 2 * len([2, 3]) default boxes on each of its 6 feature maps).
_ANCHORS_PER_LOCATION = {"retinanet": 9, "fcos": 1, "ssdlite320": 6}
_SSDLITE_FEATURE_MAPS = 6


def check_detector_arch(name: str) -> None:
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; detectors are: {', '.join(DETECTORS)}")


def _family(arch: str) -> str:
    """'fasterrcnn', 'retinanet', 'fcos' or 'ssdlite320' (the arch name's first word)."""
    check_detector_arch(arch)
    return arch.split("_", 1)[0]


def build_detector(arch: str, num_classes: int, *, score_threshold: float, max_boxes: int,
                   min_size: int | None = None) -> torch.nn.Module:
    """An untrained torchvision detector in eval mode (weights=None, weights_backbone=None:
    nothing is downloaded).

    num_classes counts the background class (COCO: 91). score_threshold (in [0, 1]) and
    max_boxes (per frame, after NMS) map onto each family's own keywords. min_size is the
    shorter side, in pixels, frames are resized to before the backbone (longer side capped
    at 1333); None keeps torchvision's default of 800 for the Faster R-CNN, RetinaNet and
    FCOS models. A smaller value (e.g. 320) trades accuracy on small objects for CPU speed.
    SSDlite always resizes to 320 x 320 and ignores min_size.
    """
    import torchvision

    family = _family(arch)
    if not 0.0 <= score_threshold <= 1.0:
        raise ConfigError(f"detector score threshold must be in [0, 1], got {score_threshold}")
    if max_boxes < 1:
        raise ConfigError(f"max boxes per frame must be at least 1, got {max_boxes}")
    if num_classes < 2:
        raise ConfigError(f"a detector needs at least 2 classes (background + 1), "
                          f"got {num_classes}")
    kwargs: dict[str, Any] = {_SCORE_KWARG[family]: score_threshold,
                              _MAX_BOXES_KWARG[family]: max_boxes}
    if min_size is not None and family != "ssdlite320":
        if min_size < 1:
            raise ConfigError(f"detector min_size must be a positive pixel count, got {min_size}")
        kwargs["min_size"] = min_size
    model = torchvision.models.get_model(arch, weights=None, weights_backbone=None,
                                         num_classes=num_classes, **kwargs)
    return model.eval()


def coco_label_names() -> tuple[str, ...]:
    """The 91 COCO category names torchvision's detectors use, index = label id.

    Index 0 is '__background__' and the ids COCO left unused are 'N/A'. Read from
    the weights' metadata shipped inside torchvision (no download).
    """
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

    return tuple(FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])


def _out_channels(arch: str, state_dict: dict[str, Any], key: str) -> int:
    weight = state_dict.get(key)
    if weight is None or not hasattr(weight, "shape"):
        raise ConfigError(f"weights do not fit {arch}: no '{key}' tensor")
    return int(weight.shape[0])


def _classes_from_dense_head(arch: str, out_channels: int, anchors: int, key: str) -> int:
    if out_channels % anchors:
        raise ConfigError(f"weights do not fit {arch}: '{key}' has {out_channels} outputs, "
                          f"not a multiple of its {anchors} anchors per location")
    return out_channels // anchors


def _ssdlite_num_classes(arch: str, state_dict: dict[str, Any]) -> int:
    """SSDlite has one classification conv per feature map; all must agree."""
    prefix = "head.classification_head.module_list"
    anchors = _ANCHORS_PER_LOCATION["ssdlite320"]
    found = set()
    for i in range(_SSDLITE_FEATURE_MAPS):
        key = f"{prefix}.{i}.1.weight"
        found.add(_classes_from_dense_head(arch, _out_channels(arch, state_dict, key),
                                           anchors, key))
    if len(found) != 1:
        raise ConfigError(f"weights do not fit {arch}: its classification convs disagree on "
                          f"the number of classes ({sorted(found)})")
    return found.pop()


def detector_num_classes_in(arch: str, state_dict: dict[str, Any]) -> int:
    """Number of classes (background included) a detector's state_dict was trained for,
    read off the shape of its classification head."""
    family = _family(arch)
    if family == "fasterrcnn":
        return _out_channels(arch, state_dict, "roi_heads.box_predictor.cls_score.weight")
    if family == "ssdlite320":
        return _ssdlite_num_classes(arch, state_dict)
    key = "head.classification_head.cls_logits.weight"
    return _classes_from_dense_head(arch, _out_channels(arch, state_dict, key),
                                    _ANCHORS_PER_LOCATION[family], key)


def _to_tensors(frames: np.ndarray, device: Any) -> list[torch.Tensor]:
    """uint8 [N, H, W, 3] RGB -> N float32 [3, H, W] tensors in [0, 1] on device."""
    import torch

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} "
                         f"{list(frames.shape)}")
    # Convert on the device: uint8 is 4x less to copy than float32.
    batch = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return list(batch.permute(0, 3, 1, 2).float().div_(255.0))


def detect(model: Any, frames: np.ndarray, device: Any
           ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run a detector on uint8 [N, H, W, 3] RGB frames.

    Returns per frame (boxes float32 [K, 4] x1, y1, x2, y2 in pixels of the input
    frames, labels int64 [K], scores float32 [K]), K <= the model's max boxes,
    sorted by falling score.
    """
    if len(frames) == 0:
        return []
    return detect_images(model, _to_tensors(frames, device))


def detect_images(model: Any, images: list[torch.Tensor],
                  ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`detect` on images already on the model's device: float [3, H, W] in [0, 1]."""
    import torch

    if not images:
        return []
    with torch.inference_mode():
        outputs = model(images)
    return [(out["boxes"].float().cpu().numpy().reshape(-1, 4),
             out["labels"].long().cpu().numpy(),
             out["scores"].float().cpu().numpy()) for out in outputs]


def scale_boxes(boxes: np.ndarray, from_size: tuple[int, int],
                to_size: tuple[int, int]) -> np.ndarray:
    """Map boxes [K, 4] (x1, y1, x2, y2, pixels of a from_size=(width, height) frame)
    to pixels of a to_size=(width, height) frame, clipped to [0, width] x [0, height].

    x and y scale separately, so a frame resized on decode to another aspect ratio
    maps back exactly; coordinates are continuous (see the module docstring), as in
    torchvision's own resize_boxes. Returns float32 [K, 4].
    """
    (from_w, from_h), (to_w, to_h) = from_size, to_size
    if min(from_w, from_h, to_w, to_h) <= 0:
        raise ValueError(f"frame sizes must be positive, got {from_size} -> {to_size}")
    sx, sy = to_w / from_w, to_h / from_h
    scaled = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * (sx, sy, sx, sy)
    upper = np.array([to_w, to_h, to_w, to_h], dtype=np.float64)
    return np.clip(scaled, 0.0, upper).astype(np.float32)
