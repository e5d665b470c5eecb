"""Models whose outputs are known, built through vidlake's custom-model hook
(`--model tests.known_models:NAME`), to check that rows describe the exact
frames the model saw: a "detector" that boxes the white rectangle in each
frame, and classifiers whose label is the index of the frame (or of a clip's
first frame), read off the index-pattern pixels."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.models.frame_cnn import IMAGENET_MEAN, IMAGENET_STD


class WhiteBoxDetector(nn.Module):
    """Boxes the pixels brighter than 0.5 in every channel: one box per frame,
    label 1, score 0.99, in torchvision's detector interface and pixel
    convention (x2 = last column + 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # so .to(device) has a parameter

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            mask = (image > 0.5).all(dim=0)
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(xs) == 0:
                boxes = torch.zeros((0, 4))
            else:
                boxes = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]],
                                     dtype=torch.float32)
            n = len(boxes)
            out.append({"boxes": boxes, "labels": torch.ones(n, dtype=torch.int64),
                        "scores": torch.full((n,), 0.99)})
        return out


def white_box_detector(num_classes: int, **_config: Any) -> nn.Module:
    return WhiteBoxDetector()


class FirstFrameIndex(nn.Module):
    """Logits peaking at the class `index % num_classes` of the clip's first
    frame, where index is channel 0 of an index-pattern frame (see
    pipeline.synthetic.video_writer.index_pattern_frames)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        # [N, T, 3, S, S] -> first frame, channel 0; frames [N, 3, S, S] -> channel 0
        red = (clips[:, 0, 0] if clips.dim() == 5 else clips[:, 0]).mean(dim=(1, 2))
        value = (red * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255
        index = value.round().long() % self.num_classes
        return nn.functional.one_hot(index, self.num_classes).float() * 10


def first_frame_index(num_classes: int, **_config: Any) -> nn.Module:
    return FirstFrameIndex(num_classes)


class FrameIndex(FirstFrameIndex):
    """FirstFrameIndex for frames [N, 3, S, S], ending in an identity Linear
    layer: frame classifiers have a last Linear (their embedding's end)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.fc = nn.Linear(num_classes, num_classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(num_classes))
            self.fc.bias.zero_()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.fc(super().forward(clips))


def frame_index(num_classes: int, **_config: Any) -> nn.Module:
    """A frame classifier labelling each frame with its index % num_classes."""
    return FrameIndex(num_classes)


class HangOnDark(nn.Module):
    """A frame classifier that hangs (in native code, holding the GIL) on a
    batch of near-black frames, and gives flat logits for any other."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        std, mean = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_STD, IMAGENET_MEAN))
        pixels = frames * std + mean
        if float(pixels.mean()) < 0.05:
            from tests.fault_injection import hang_forever

            hang_forever()
        return self.head(frames.mean(dim=(2, 3)))


def hang_on_dark(num_classes: int, **_config: Any) -> nn.Module:
    return HangOnDark(num_classes)
