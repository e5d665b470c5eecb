"""ModelShape: the architecture and clip shape a user trains, without torch
(the `vidlake` command imports it for every subcommand)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.models.frame_cnn import FRAME_CNNS
from pipeline.models.video_cnn import VIDEO_CNNS

TRAINABLE = (*registry.RNN_ARCHS, *VIDEO_CNNS, *FRAME_CNNS)
# Default square input side per family (pixels): the CNN+RNN and frame CNNs
# see whole frames at S x S; 3D CNNs crop S out of a resize 8/7 larger
# (except WHOLE_FRAME ones). The CNN+RNN's 64 px suits its small_cnn
# backbone, trained from scratch on a CPU (docs/design.md#training has the
# measurements).
DEFAULT_SIZE = {"rnn": 64, "video": 112, "frame": 112}
# Defaults that learn from scratch on a CPU (the demo's motion task, measured
# in docs/design.md#training): 8 frames 2 apart (0.6 s at 25 fps: enough
# displacement to see motion), and for the CNN+RNN the 0.2M-parameter
# small_cnn keeping a 4x4 grid of cells per frame (global pooling loses
# where things are, which motion needs).
DEFAULT_CLIP_LEN = 8
DEFAULT_FRAME_STEP = 2
DEFAULT_BACKBONE = "small_cnn"
DEFAULT_POOL_GRID = 4
# S3D's head averages a fixed 2x7x7 window: it needs 224 px crops. small_3d
# (0.29M parameters) learns the demo's motion from scratch at 64 px on a CPU
# with the clip defaults above (docs/design.md#training).
ARCH_SIZE = {"s3d": 224, "small_3d": 64, "mvit_v2_s": 224}
# MViT's attention pooling is sized for 16 frames of 224 px when it is built:
# no other clip length passes through it (pipeline.models.video_cnn).
ARCH_CLIP_LEN = {"mvit_v2_s": 16}
# The largest value of each ModelShape field `vidlake train` accepts, from its
# flag or from an --init-weights model.pt (whose numbers are hints).
LARGEST = {"size": 1024, "clip_len": 1024, "frame_step": 1024, "hidden_size": 65_536,
           "pool_grid": 64}
# 3D CNNs that see whole frames at S x S, as the CNN+RNN does, instead of
# torchvision's crop from a resize 8/7 larger (which stretches a square frame
# and cuts off its sides, where the demo's shapes drift): on the demo's
# motion a small_3d of 0.49M parameters labelled 1.000 of the held-out
# videos with whole frames, 0.912 with the crop.
WHOLE_FRAME = frozenset({"small_3d"})


@dataclass(frozen=True)
class ModelShape:
    """What the user chose: architecture, clip shape and input size (pixels)."""

    arch: str
    clip_len: int = DEFAULT_CLIP_LEN
    frame_step: int = DEFAULT_FRAME_STEP
    size: int = 0  # 0: the family default
    backbone: str = DEFAULT_BACKBONE
    hidden_size: int = 256
    pool_grid: int = DEFAULT_POOL_GRID

    @property
    def family(self) -> str:
        if self.arch in registry.RNN_ARCHS:
            return "rnn"
        return "video" if self.arch in VIDEO_CNNS else "frame"

    @property
    def side(self) -> int:
        return self.size or self.default_side

    @property
    def default_side(self) -> int:
        return ARCH_SIZE.get(self.arch) or DEFAULT_SIZE[self.family]

    def decode_size(self) -> tuple[int, int]:
        """(width, height) frames are decoded at, for training and for labelling.

        3D CNNs at their default side get the resize documented with their
        Kinetics weights (what a fine-tune from them must see: 171x128 for
        the ResNet-3Ds, 256x256 for S3D); other sides scale 171x128 by side/112.
        WHOLE_FRAME 3D CNNs (small_3d) see whole frames at S x S, as the rest do."""
        if self.family != "video" or self.arch in WHOLE_FRAME:
            return self.side, self.side
        documented = registry.CLIP_DEFAULTS.get(self.arch)
        if documented is not None and self.side == self.default_side:
            return documented[0], documented[1]
        return round(self.side * 171 / 112), round(self.side * 128 / 112)


def arch_defaults(arch: str) -> dict[str, int]:
    """ModelShape fields whose default differs for `arch` (MViT's fixed clip length)."""
    return {"clip_len": ARCH_CLIP_LEN[arch]} if arch in ARCH_CLIP_LEN else {}


def check_trainable(arch: str) -> None:
    if arch not in TRAINABLE:
        raise ConfigError(f"cannot train {arch!r}; trainable models are: {', '.join(TRAINABLE)}")


