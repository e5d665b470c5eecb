"""What the hostile-file tests generate: a tiny video, a user's own model
builder, a module no one named (it leaves a mark if it is ever imported), raw
checkpoint dicts as any torch.save writes them, and `vidlake` run as a user
runs it, in a child process whose memory is capped (a regression fails there,
instead of exhausting the test machine)."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.procs import REPO_ROOT, VENV_BIN, cap_memory

# Address space of a child `vidlake` process: torch imports in about 1 GiB;
# a model or label file sized by a header would need far more.

USER_BUILDER = '''
"""A user's own frame model: vidlake runs it because the user names it."""
from torch import nn


def build(num_classes, *, width=4):
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, num_classes))


def build_any(num_classes, **options):
    return build(num_classes)
'''

USER_DETECTOR = '''
"""A user's own detector that takes no detector options (score_threshold,
max_boxes, min_size): it boxes each whole image, as its best class."""
import torch
from torch import nn


class WholeImage(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, images):
        out = []
        for image in images:
            _, height, width = image.shape
            best = self.head(image.mean(dim=(1, 2))).argmax()
            out.append({"boxes": torch.tensor([[0.0, 0.0, width, height]]),
                        "labels": best.reshape(1), "scores": torch.ones(1)})
        return out


def build(num_classes):
    return WholeImage(num_classes)
'''

USER_CLIP_MODEL = '''
"""A user's own clip model with a keyword of its own called `cnn_rnn`: vidlake
must not read it as the CNN+RNN family's options."""
from torch import nn


class MeanColour(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, clips):  # float [N, T, 3, S, S]
        return self.head(clips.mean(dim=(1, 3, 4)))


def build(num_classes, cnn_rnn=None):
    return MeanColour(num_classes)
'''

TRAP_MODULE = '''
"""Named only inside a checkpoint: importing it at all is the failure."""
import pathlib

pathlib.Path(__file__).with_name("IMPORTED").write_text("a checkpoint chose code to run")


def build(num_classes, **config):
    raise SystemExit("a checkpoint chose this builder")
'''


def write_module(folder: Path, name: str, source: str) -> Path:
    """`folder/name.py` holding `source`; returns `folder` (for sys.path/PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


def tiny_video(folder: Path) -> Path:
    """A 6-frame 32x32 H.264 file in `folder`: enough for a run to reach its models."""
    from pipeline.synthetic.video_writer import write_video

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.mp4"
    write_video(path, [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(6)])
    return path


def save_dict(path: Path, **fields: Any) -> Path:
    """`fields` saved as one dict by torch.save, as anyone can write a checkpoint."""
    torch.save(dict(fields), path)
    return path


def user_builder_state(num_classes: int = 3, width: int = 4) -> dict[str, torch.Tensor]:
    """Weights of USER_BUILDER's `build` (same layers, built here)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(width, num_classes))
    return model.state_dict()


def linear_head_state(best: int = 2, num_classes: int = 3) -> dict[str, torch.Tensor]:
    """Weights of a model whose only layer is `head = nn.Linear(3, num_classes)`
    (USER_DETECTOR, USER_CLIP_MODEL) that pick class `best` whatever the input."""
    bias = torch.zeros(num_classes)
    bias[best] = 1.0
    return {"head.weight": torch.zeros(num_classes, 3), "head.bias": bias}


def child(argv: list[str], python_path: Path | None = None, timeout: float = 120,
          ) -> subprocess.CompletedProcess[str]:
    """Run `argv` from the repository root, memory capped; `python_path` is
    prepended to PYTHONPATH (where a user keeps their own builders)."""
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(python_path),
                                                          env.get("PYTHONPATH"))))
    return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False, preexec_fn=cap_memory)


def vidlake(*args: str, python_path: Path | None = None, timeout: float = 120,
            ) -> subprocess.CompletedProcess[str]:
    """`vidlake ARGS` as a user runs it (see `child`)."""
    return child([str(VENV_BIN / "vidlake"), *args], python_path, timeout)


def error_lines(stderr: str) -> list[str]:
    """The `vidlake ...: error:` lines of a child's stderr."""
    return [line for line in stderr.splitlines() if ": error: " in line]
