"""Detector building, inference output format, class-count reading and box scaling.

Models are untrained (no downloads); small inputs keep the whole file to ~20 s on 2 cores.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.detectors import (
    DETECTORS,
    build_detector,
    check_detector_arch,
    coco_label_names,
    detect,
    detector_num_classes_in,
    scale_boxes,
)

WIDTH, HEIGHT = 160, 120
MIN_SIZE = 64  # internal frame 85 x 64: boxes left in that frame would stay below x = 86


def _frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8)


def _post_settings(model: Any) -> tuple[float, int]:
    """(score threshold, max detections) as the built model holds them."""
    holder = getattr(model, "roi_heads", model)  # Faster R-CNN keeps them in its ROI heads
    return holder.score_thresh, holder.detections_per_img


@pytest.mark.parametrize("arch", DETECTORS)
def test_detect_returns_well_formed_boxes_in_input_pixels(arch):
    torch.manual_seed(0)
    # Threshold 0 keeps every candidate, so even an untrained model returns boxes.
    model: Any = build_detector(arch, 3, score_threshold=0.0, max_boxes=20, min_size=MIN_SIZE)
    # torchvision swallows unknown keywords silently, so check the values landed
    # (every family's defaults differ from these).
    assert _post_settings(model) == (0.0, 20)
    assert not model.training
    expected_min = (320,) if arch.startswith("ssdlite") else (MIN_SIZE,)
    assert tuple(model.transform.min_size) == expected_min
    results = detect(model, _frames(), "cpu")
    assert len(results) == 2
    for boxes, labels, scores in results:
        assert boxes.dtype == np.float32 and labels.dtype == np.int64
        assert scores.dtype == np.float32
        assert boxes.shape == (len(labels), 4) and scores.shape == (len(labels),)
        assert 0 < len(labels) <= 20
        assert np.all(boxes >= 0) and np.all(boxes[:, [0, 2]] <= WIDTH)
        assert np.all(boxes[:, [1, 3]] <= HEIGHT)
        assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])
        assert np.all((labels >= 0) & (labels < 3))
        assert np.all(np.diff(scores) <= 0)
    # Boxes were mapped back from the model's resized frame to the input frame.
    assert max(float(boxes[:, 2].max()) for boxes, _, _ in results) > WIDTH * 0.6


def test_detect_on_no_frames_and_bad_frames():
    model = build_detector("ssdlite320_mobilenet_v3_large", 3, score_threshold=0.5, max_boxes=5)
    assert detect(model, np.zeros((0, HEIGHT, WIDTH, 3), np.uint8), "cpu") == []
    with pytest.raises(ValueError, match="uint8"):
        detect(model, np.zeros((1, HEIGHT, WIDTH, 3), np.float32), "cpu")


@pytest.mark.parametrize("arch", DETECTORS)
@pytest.mark.parametrize("num_classes", [3, 91])
def test_num_classes_round_trip(arch, num_classes):
    model = build_detector(arch, num_classes, score_threshold=0.5, max_boxes=10)
    assert detector_num_classes_in(arch, model.state_dict()) == num_classes


def test_num_classes_rejects_weights_of_another_family():
    fcos = build_detector("fcos_resnet50_fpn", 3, score_threshold=0.5, max_boxes=10)
    # 3 cls_logits outputs cannot be 9 RetinaNet anchors x some number of classes.
    with pytest.raises(ConfigError, match="not a multiple of its 9 anchors"):
        detector_num_classes_in("retinanet_resnet50_fpn_v2", fcos.state_dict())
    with pytest.raises(ConfigError, match=re.escape("cls_score.weight")):
        detector_num_classes_in("fasterrcnn_resnet50_fpn_v2", fcos.state_dict())
    with pytest.raises(ConfigError, match=re.escape("module_list.0.1.weight")):
        detector_num_classes_in("ssdlite320_mobilenet_v3_large", fcos.state_dict())


def test_unknown_detector_and_bad_settings():
    with pytest.raises(ConfigError, match="fcos_resnet50_fpn"):
        check_detector_arch("yolo")
    with pytest.raises(ConfigError, match="score threshold"):
        build_detector("fcos_resnet50_fpn", 3, score_threshold=1.5, max_boxes=10)
    with pytest.raises(ConfigError, match="max boxes"):
        build_detector("fcos_resnet50_fpn", 3, score_threshold=0.5, max_boxes=0)


def test_scale_boxes_maps_each_axis_exactly():
    boxes = np.array([[10, 20, 20, 40], [0, 0, 160, 120], [40, 30, 80, 90]], np.float32)
    scaled = scale_boxes(boxes, (160, 120), (640, 360))  # x * 4, y * 3
    expected = [[40, 60, 80, 120], [0, 0, 640, 360], [160, 90, 320, 270]]
    np.testing.assert_array_equal(scaled, np.array(expected, np.float32))
    assert scaled.dtype == np.float32


def test_scale_boxes_clips_to_the_target_frame():
    boxes = np.array([[-5, -1, 170, 130], [150, 110, 200, 125]], np.float32)
    scaled = scale_boxes(boxes, (160, 120), (320, 240))
    np.testing.assert_array_equal(scaled, [[0, 0, 320, 240], [300, 220, 320, 240]])


def test_scale_boxes_empty_and_round_trip():
    assert scale_boxes(np.zeros((0, 4), np.float32), (160, 120), (640, 360)).shape == (0, 4)
    boxes = np.array([[12.5, 7.25, 100.0, 119.0]], np.float32)
    back = scale_boxes(scale_boxes(boxes, (160, 120), (1920, 1080)), (1920, 1080), (160, 120))
    np.testing.assert_allclose(back, boxes, rtol=1e-6)


def test_coco_label_names():
    names = coco_label_names()
    assert len(names) == 91
    assert names[0] == "__background__" and names[1] == "person"
    assert names[3] == "car" and names[12] == "N/A" and names[90] == "toothbrush"
