"""small_3d: a 3D CNN small enough to train from scratch on a CPU.

Torchvision's 3D CNNs (r3d_18: 33M parameters) cost about 0.8 s per clip per
training step at 64 px on two cores; this one, four 3x3x3 convolutions in
the spirit of the CNN+RNN's small_cnn backbone (0.29M parameters), costs
about 3 ms (docs/design.md#training has the measurements).
"""

from __future__ import annotations

from torch import nn

# (in channels, out channels, stride (T, H, W)) per block: full time
# resolution in the first two blocks (motion between neighbouring frames is
# the signal), then time halves with space. 16-32-64-128 learnt the demo's
# motion as well as 24-48-96-128 (0.49M) at 3 ms a clip-step instead of 8.
SMALL_3D_BLOCKS = ((3, 16, (1, 2, 2)), (16, 32, (1, 2, 2)), (32, 64, (2, 2, 2)),
                   (64, 128, (2, 2, 2)))
SMALL_3D_WIDTH = 128


def build_small_3d(num_classes: int) -> nn.Module:
    """An untrained small_3d: float32 [N, 3, T, H, W] -> logits [N, num_classes].

    Four Conv3d(3x3x3, padding 1) + BatchNorm3d + ReLU blocks (SMALL_3D_BLOCKS:
    space shrinks 16x, time 4x), a global average pool and a Linear head
    named `fc`, as in torchvision's r3d_18. Any T >= 1 and H, W >= 1 pass
    (the pool is adaptive). 0.29M parameters with four classes.

    Global pooling suits a 3D CNN where it blinds a per-frame CNN: its
    filters see several frames, so what it pools already says which way
    things move, not only where they are.
    """
    layers: list[nn.Module] = []
    for c_in, c_out, stride in SMALL_3D_BLOCKS:
        layers += [nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                   nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)]
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*layers))
    model.add_module("avgpool", nn.AdaptiveAvgPool3d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc", nn.Linear(SMALL_3D_WIDTH, num_classes))
    return model
