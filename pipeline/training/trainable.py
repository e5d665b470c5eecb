"""A trainable model of any family, its input conversion, and its export.

Training feeds each family exactly what `vidlake label` feeds it at
inference (same resize, crop and normalisation functions), so the exported
checkpoint labels with no other flag than --weights:

- CNN+RNN (cnn_gru, cnn_lstm): clips resized to S x S, ImageNet statistics;
- 3D CNNs (r3d_18, mc3_18, r2plus1d_18, s3d): resized, centre-cropped to S,
  Kinetics statistics (small_3d: whole frames at S x S); the resize and crop
  go into the checkpoint;
- frame CNNs: every frame of the clip through the CNN, logits averaged over
  the clip; the export is the plain frame CNN, which labels frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.frame_cnn import IMAGENET_MEAN, IMAGENET_STD, build_frame_cnn
from pipeline.models.video_cnn import ClipPreprocess, normalized_frames
from pipeline.training.init_weights import Parts
from pipeline.training.model_shape import ModelShape, check_trainable


class FrameAverage(nn.Module):
    """A frame CNN applied to every frame: [N, T, 3, S, S] -> mean logits [N, C]."""

    def __init__(self, frame_model: nn.Module) -> None:
        super().__init__()
        self.frame_model = frame_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        return self.frame_model(x.flatten(0, 1)).view(n, t, -1).mean(dim=1)


class Trainable:
    """The module to train, how clips become its input, and what to export."""

    def __init__(self, shape: ModelShape, num_classes: int) -> None:
        check_trainable(shape.arch)
        self.shape = shape
        self.module = self._build(num_classes)

    def _build(self, num_classes: int) -> nn.Module:
        shape = self.shape
        if shape.family == "rnn":
            from pipeline.models.cnn_rnn import CnnRnnConfig, build_cnn_rnn

            self.rnn_config = CnnRnnConfig(
                backbone=shape.backbone, hidden_size=shape.hidden_size, input_size=shape.side,
                clip_len=shape.clip_len, frame_step=shape.frame_step, pool_grid=shape.pool_grid)
            return build_cnn_rnn(shape.arch, num_classes, self.rnn_config)
        if shape.family == "video":
            from pipeline.models.video_cnn import build_video_cnn, preprocess_for

            width, height = shape.decode_size()
            documented = preprocess_for(shape.arch)
            self.preprocess = ClipPreprocess((height, width), (shape.side, shape.side),
                                             documented.mean, documented.std, shape.clip_len)
            return build_video_cnn(shape.arch, num_classes)
        return FrameAverage(build_frame_cnn(shape.arch, num_classes))

    def inputs(self, clips: np.ndarray, device: Any) -> torch.Tensor:
        """uint8 clips [N, T, H, W, 3] -> the module's float input on `device`."""
        if self.shape.family == "rnn":
            from pipeline.models.cnn_rnn import frames_batch

            return frames_batch(clips, self.rnn_config, device)
        if self.shape.family == "video":
            from pipeline.models.video_cnn import clip_batch

            return clip_batch(clips, self.preprocess, device)
        n, t, side = clips.shape[0], clips.shape[1], self.shape.side
        flat = normalized_frames(clips.reshape(n * t, *clips.shape[2:]), (side, side),
                                 (side, side), IMAGENET_MEAN, IMAGENET_STD, device)
        return flat.view(n, t, 3, side, side)

    def export(self, module: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state_dict, config) of the model as `vidlake label` loads it;
        `module` is the trained module (unwrapped from DDP)."""
        shape = self.shape
        if shape.family == "rnn":
            return module.state_dict(), {"cnn_rnn": self.rnn_config.to_dict()}
        if shape.family == "video":
            pre = self.preprocess
            return module.state_dict(), {"clip": {
                "clip_len": shape.clip_len, "frame_step": shape.frame_step,
                "resize": list(pre.resize), "crop": list(pre.crop)}}
        return self._frame_model(module).state_dict(), {"input_size": shape.side}

    def parts(self) -> Parts:
        """The classifier head's and the pretrained backbone's tensor names
        (prefixes) in `module`: what --init-weights replaces and must cover."""
        if self.shape.family == "rnn":
            return Parts(head="classifier.", backbone="backbone.")
        if self.shape.family == "video":
            from pipeline.models.video_cnn import output_layer_name

            return Parts(head=f"{output_layer_name(self.shape.arch)}.", backbone="")
        from pipeline.models.frame_cnn import last_linear

        return Parts(head=f"frame_model.{last_linear(self._frame_model(self.module))[0]}.",
                     backbone="")

    @staticmethod
    def _frame_model(module: nn.Module) -> nn.Module:
        """The frame CNN inside a frame family's FrameAverage (or `module` itself)."""
        return module.frame_model if isinstance(module, FrameAverage) else module

    def check_input(self) -> None:
        """Run one zero clip through the model: ConfigError, before any worker
        starts, when the clip length or size cannot pass through it."""
        width, height = self.shape.decode_size()
        clip = np.zeros((1, self.shape.clip_len, height, width, 3), np.uint8)
        try:
            with torch.no_grad():
                self.module.eval()(self.inputs(clip, "cpu"))
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"{self.shape.arch} cannot take {self.shape.clip_len}-frame clips at "
                f"{self.shape.side} px (raise --clip-len or --size): "
                f"{str(exc).splitlines()[0][:200]}") from None

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this Trainable (stored in checkpoints)."""
        return {"arch": self.shape.arch, "clip_len": self.shape.clip_len,
                "frame_step": self.shape.frame_step, "size": self.shape.side,
                "backbone": self.shape.backbone, "hidden_size": self.shape.hidden_size,
                "pool_grid": self.shape.pool_grid}
