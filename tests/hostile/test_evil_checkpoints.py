"""A weights file never chooses code to run and never sizes an allocation.

Every checkpoint here is generated (torch.save of a dict, or a zip written by
hand) and refused with exit 2 / ConfigError naming the file and the field,
on the driver (resolve: no torch) and in the actor (load_model) alike."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from jobs import label
from jobs.label import parse_args
from pipeline.analyses.model_loader import load_model
from pipeline.analyses.resolve import resolve_analyses
from pipeline.cli.label_options import label_config_from_args
from pipeline.config import ModelSpec
from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.models.checkpoint import checkpoint_bytes, save_checkpoint
from pipeline.models.cnn_rnn import CnnRnnConfig, build_cnn_rnn
from pipeline.storage_options import StorageOptions
from pipeline.training.checkpoints import load_training_state
from tests.hostile.builders import (
    TRAP_MODULE,
    USER_BUILDER,
    USER_CLIP_MODEL,
    USER_DETECTOR,
    child,
    error_lines,
    linear_head_state,
    save_dict,
    tiny_video,
    user_builder_state,
    vidlake,
    write_module,
)
from tests.lakes import rows

# os.spawnvp(mode, file, args): vidlake used to call arch(num_classes, **config),
# so num_classes became the mode. A 0-row last weight makes it 0, P_WAIT: the
# shell would have finished (and left its mark) before vidlake went on.
SPAWN_STATE = {"w.weight": torch.zeros(0, 1)}
SMALL_GRU = CnnRnnConfig(backbone="small_cnn", hidden_size=8, input_size=32, clip_len=4)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_video(tmp_path_factory.mktemp("video"))


@pytest.fixture
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path with the user's own builder and a module nobody named."""
    folder = write_module(tmp_path / "code", "user_builder", USER_BUILDER)
    write_module(folder, "trap_module", TRAP_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    for name in ("user_builder", "trap_module"):
        sys.modules.pop(name, None)  # each test imports its own copy
    return folder


def _spawn_checkpoint(path: Path, marker: Path) -> Path:
    return save_dict(path, arch="os:spawnvp", state_dict=SPAWN_STATE, label_names=["a"],
                     config={"file": "sh", "args": ["sh", "-c", f"touch {marker}"]})


def _driver(weights: Path, *flags: str) -> Any:
    """resolve_analyses as `vidlake label SRC --weights WEIGHTS FLAGS` runs it."""
    args = parse_args([str(weights.parent), "--output", str(weights.parent / "lake"),
                       "--weights", str(weights), *flags])
    return resolve_analyses(label_config_from_args(args))


def _actor(weights: Path, family: str = "frame", name: str = "auto") -> Any:
    return load_model(ModelSpec(name, weights_uri=str(weights)), StorageOptions(), family)


def _refused_everywhere(weights: Path, family: str, *needles: str, name: str = "auto") -> None:
    """Both the driver and the actor refuse `weights` with a message naming it and `needles`."""
    flags = () if name == "auto" else ("--model", name)
    for check in (lambda: _driver(weights, *flags), lambda: _actor(weights, family, name)):
        with pytest.raises(ConfigError) as refused:
            check()
        message = str(refused.value)
        assert "\n" not in message and str(weights) in message
        assert all(n in message for n in needles), message


# -- arch: only built-in names, or the builder the user named ------------------------
def test_a_checkpoint_cannot_make_vidlake_run_a_shell_command(video: Path, tmp_path: Path):
    marker, lake = tmp_path / "PWNED", tmp_path / "lake"
    evil = _spawn_checkpoint(tmp_path / "evil.pt", marker)
    done = vidlake("label", str(video), "--output", str(lake), "--weights", str(evil),
                   "--engine", "sequential")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = error_lines(done.stderr)
    assert str(evil) in line and "arch 'os:spawnvp'" in line
    assert not marker.exists()
    assert not lake.exists()  # refused before the output was touched


def test_the_actor_refuses_it_too(tmp_path: Path):
    marker = tmp_path / "PWNED"
    _refused_everywhere(_spawn_checkpoint(tmp_path / "evil.pt", marker), "frame",
                        "arch 'os:spawnvp'")
    assert not marker.exists()


@pytest.mark.parametrize("arch", ["builtins:eval", "subprocess:call", "no_such_module_x:build",
                                  "trap_module:build", "vgg16"])
@pytest.mark.parametrize("named", ["auto", "user_builder:build"])
def test_an_arch_the_user_did_not_name_is_refused_unimported(
        video: Path, tmp_path: Path, code: Path, capsys: pytest.CaptureFixture[str],
        arch: str, named: str):
    """Whatever the checkpoint names, and whether or not the user named another
    builder, nothing it names is imported or called."""
    weights = save_dict(tmp_path / "evil.pt", arch=arch, state_dict={}, label_names=["a"],
                        config={"source": "print('hi')"})
    flags = [] if named == "auto" else ["--model", named]
    assert label.main([str(video), "--output", str(tmp_path / "lake"), "--weights",
                       str(weights), "--engine", "sequential", *flags]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert str(weights) in line and f"arch '{arch}'" in line
    _refused_everywhere(weights, "frame", f"arch '{arch}'", name=named)
    assert not (code / "IMPORTED").exists() and "trap_module" not in sys.modules


# -- a builder the user names still runs; its checkpoint's config fits its signature ---
def test_a_builder_the_user_names_still_runs(video: Path, tmp_path: Path):
    folder = write_module(tmp_path / "code", "user_builder", USER_BUILDER)
    weights, lake = tmp_path / "mine.pt", tmp_path / "lake"
    save_checkpoint(str(weights), arch="user_builder:build", state_dict=user_builder_state(),
                    label_names=["red", "green", "blue"], config={"width": 4})
    done = vidlake("label", str(video), "--output", str(lake), "--model", "user_builder:build",
                   "--weights", str(weights), "--engine", "sequential", "--size", "32",
                   python_path=folder)
    assert done.returncode == 0, done.stderr
    got = rows(str(lake), "select label, model from frame_labels")
    assert len(got) == 6  # uniform:8 of a 6-frame video: every frame
    assert {r["model"] for r in got} == {"user_builder:build"}
    assert {r["label"] for r in got} <= {"red", "green", "blue"}


def test_a_config_key_the_builder_does_not_declare_is_refused(
        video: Path, tmp_path: Path, code: Path, capsys: pytest.CaptureFixture[str]):
    weights = tmp_path / "mine.pt"
    save_checkpoint(str(weights), arch="user_builder:build", state_dict=user_builder_state(),
                    label_names=["red", "green", "blue"], config={"width": 4, "depth": 2})
    assert label.main([str(video), "--output", str(tmp_path / "lake"), "--model",
                       "user_builder:build", "--weights", str(weights), "--engine",
                       "sequential"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert str(weights) in line and "config.depth" in line and "(it takes: width)" in line
    # **options declares any key: the same config loads with `build_any`
    save_checkpoint(str(weights), arch="user_builder:build_any",
                    state_dict=user_builder_state(), label_names=["red", "green", "blue"],
                    config={"width": 4, "depth": 2})
    info, _ = _actor(weights, name="user_builder:build_any")
    assert info.config == {"width": 4, "depth": 2}


def test_a_custom_detector_needs_no_detector_options(video: Path, tmp_path: Path):
    """A detection analysis passes score_threshold, max_boxes and min_size to its
    builder; a user's builder that declares none of them gets none, and runs."""
    folder = write_module(tmp_path / "code", "user_detector", USER_DETECTOR)
    weights, lake = tmp_path / "det.pt", tmp_path / "lake"
    save_checkpoint(str(weights), arch="user_detector:build", state_dict=linear_head_state(),
                    label_names=["red", "green", "blue"])
    done = vidlake("label", str(video), "--output", str(lake), "--analysis",
                   f"detections:model=user_detector:build,weights={weights}",
                   "--engine", "sequential", python_path=folder)
    assert done.returncode == 0, done.stderr
    got = rows(str(lake), "select label, score, x1, y1, x2, y2 from detections "
                          "order by frame_index")
    assert got == [{"label": "blue", "score": 1.0, "x1": 0.0, "y1": 0.0, "x2": 32.0,
                    "y2": 32.0}] * 6


def test_a_custom_clip_model_keeps_its_own_cnn_rnn_keyword(video: Path, tmp_path: Path):
    """A custom clip builder's config is its own: a `cnn_rnn` key there is passed
    to it, never read as the CNN+RNN options (which would refuse it mid-run)."""
    folder = write_module(tmp_path / "code", "user_clip", USER_CLIP_MODEL)
    weights, lake = tmp_path / "clip.pt", tmp_path / "lake"
    save_checkpoint(str(weights), arch="user_clip:build", state_dict=linear_head_state(),
                    label_names=["red", "green", "blue"], config={"cnn_rnn": {"odd": 1}})
    done = vidlake("label", str(video), "--output", str(lake), "--analysis",
                   f"clip_labels:model=user_clip:build,weights={weights},clip_len=4",
                   "--engine", "sequential", python_path=folder)
    assert done.returncode == 0, done.stderr
    assert rows(str(lake), "select label from clip_labels") == [{"label": "blue"}]


def test_a_custom_config_must_be_plain_data(tmp_path: Path, code: Path):
    weights = save_dict(tmp_path / "mine.pt", arch="user_builder:build",
                        state_dict=user_builder_state(), label_names=["a", "b", "c"],
                        config={"width": torch.tensor(4)})
    _refused_everywhere(weights, "frame", "config.width holds a", name="user_builder:build")


# -- config: only the options the architecture declares, plain and in range ----------
_CLIP = {"clip_len": 16, "resize": [128, 171], "crop": [112, 112]}
_DETECTOR = "fasterrcnn_mobilenet_v3_large_fpn"
CONFIGS = [
    ("cnn_gru", {"cnn_rnn": {**SMALL_GRU.to_dict(), "added_later": 1}},
     "config.cnn_rnn.added_later is not an option"),
    ("cnn_gru", {"cnn_rnn": {"hidden_size": 2**31}}, "config.cnn_rnn.hidden_size must be"),
    ("cnn_gru", {"cnn_rnn": {"hidden_size": -8}}, "config.cnn_rnn.hidden_size must be"),
    ("cnn_gru", {"cnn_rnn": {"hidden_size": True}}, "config.cnn_rnn.hidden_size must be"),
    ("cnn_gru", {"cnn_rnn": {"dropout": float("nan")}}, "config.cnn_rnn.dropout must be"),
    ("cnn_lstm", {"cnn_rnn": {"input_size": float("inf")}}, "config.cnn_rnn.input_size"),
    ("cnn_lstm", {"cnn_rnn": {"backbone": "vgg16"}}, "config.cnn_rnn.backbone must be"),
    ("r3d_18", {"clip": {**_CLIP, "clip_len": 10**9}}, "config.clip.clip_len must be"),
    ("r3d_18", {"clip": {**_CLIP, "resize": [128, -171]}}, "config.clip.resize[1] must be"),
    ("r3d_18", {"clip": {"clip_len": 16, "resize": [128, 171]}}, "config.clip.crop is missing"),
    ("s3d", {"clip": {**_CLIP, "resize": [64, 64]}}, "config.clip.crop [112, 112] is larger"),
    ("r3d_18", "tiny", "config must be a mapping"),
    ("cnn_gru", {"sample": "os:system"}, "config.sample: bad --sample 'os:system'"),
    ("r3d_18", {"clip": _CLIP, "sample": "every:0~"}, "config.sample: bad --sample"),
    ("r3d_18", {"clip": _CLIP, "sample": 8}, "config.sample must be a string, got 8"),
    ("mobilenet_v3_small", {"sample": "keyframes"}, "config.sample is not an option"),
    ("mobilenet_v3_small", {"input_size": 0}, "config.input_size must be"),
    ("mobilenet_v3_small", {"input_size": 2**100}, "config.input_size is <a 101-bit integer>"),
    ("mobilenet_v3_small", {"cnn_rnn": {}}, "config.cnn_rnn is not an option"),
    ("mobilenet_v3_small", {"input_size": torch.tensor(224)}, "config.input_size holds a"),
    ("mobilenet_v3_small", {"input_size": [[[[[[[[[[1]]]]]]]]]]}, "nests deeper than"),
    (_DETECTOR, {"score_threshold": float("nan")}, "config.score_threshold must be"),
    (_DETECTOR, {"max_boxes": 10**12}, "config.max_boxes must be"),
]


@pytest.mark.parametrize(("arch", "config", "needle"), CONFIGS,
                         ids=[f"{a}-{n.split()[0]}" for a, _, n in CONFIGS])
def test_checkpoint_config_is_checked_on_driver_and_actor(tmp_path: Path, arch: str,
                                                          config: Any, needle: str):
    weights = save_dict(tmp_path / "model.pt", arch=arch, state_dict={},
                        label_names=["a", "b"], config=config)
    _refused_everywhere(weights, registry.family_of(arch) or "frame", needle)


@pytest.mark.parametrize(("fields", "needle"), [
    ({"arch": 42}, "arch must be a model name"),
    ({"label_names": [1, 2]}, "label_names: name 1 is 1"),
    ({"label_names": ["a", "a"]}, "label_names: 'a' appears twice"),
    ({"label_names": "ab"}, "expected a non-empty list of label names"),
])
def test_checkpoint_fields_must_be_plain(tmp_path: Path, fields: dict[str, Any], needle: str):
    weights = save_dict(tmp_path / "model.pt", **{"arch": "resnet18", "state_dict": {},
                                                  "label_names": ["a"], **fields})
    _refused_everywhere(weights, "frame", needle)


# -- headers are hints: the model is shaped by the weights, never by a number --------
MEASURE = """
import json, resource, sys, time
import torch, torchvision  # their own footprint is not the model's
import pipeline.models.cnn_rnn
from pipeline.analyses.model_loader import load_model
from pipeline.config import ModelSpec
from pipeline.errors import ConfigError
from pipeline.storage_options import StorageOptions

for weights, name, family in json.loads(sys.argv[1]):
    before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()
    try:
        load_model(ModelSpec(name, weights_uri=weights), StorageOptions(), family)
        refused = None
    except ConfigError as exc:
        refused = str(exc)
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"weights": weights, "refused": refused, "grew_mib": grew,
                      "seconds": time.monotonic() - started}))
"""


def _huge_checkpoints(folder: Path) -> list[tuple[str, str, str]]:
    """(weights, --model, family) of files a few MB small that describe huge models."""
    gru = build_cnn_rnn("cnn_gru", 2, SMALL_GRU).state_dict()
    big_gru = {"cnn_rnn": {**SMALL_GRU.to_dict(), "hidden_size": 65536}}  # 51 GB of GRU
    save_checkpoint(str(folder / "gru.pt"), arch="cnn_gru", state_dict=gru,
                    label_names=["a", "b"], config=big_gru)
    # Stride-0 views: a 4-byte storage that claims 2**40 rows (4 PB as a real tensor).
    frame = registry.build("frame", "mobilenet_v3_small", 2, {}).state_dict()
    frame["classifier.3.weight"] = torch.zeros(1).expand(2**40, 1024)
    frame["classifier.3.bias"] = torch.zeros(1).expand(2**40)
    save_checkpoint(str(folder / "frame.pt"), arch="mobilenet_v3_small", state_dict=frame,
                    label_names=["a"])
    custom = {**user_builder_state(), "3.weight": torch.zeros(1).expand(2**40, 4),
              "3.bias": torch.zeros(1).expand(2**40)}
    save_checkpoint(str(folder / "custom.pt"), arch="user_builder:build", state_dict=custom,
                    label_names=["a"])
    return [(str(folder / "gru.pt"), "auto", "clip"),
            (str(folder / "frame.pt"), "auto", "frame"),
            (str(folder / "custom.pt"), "user_builder:build", "frame")]


def test_huge_models_are_refused_before_any_allocation(tmp_path: Path):
    """Built on the meta device first: a mismatch or an allocation the file
    cannot back is refused in well under a second, with memory untouched."""
    cases = _huge_checkpoints(tmp_path)
    folder = write_module(tmp_path / "code", "user_builder", USER_BUILDER)
    done = child([sys.executable, "-c", MEASURE, json.dumps(cases)], python_path=folder)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["weights"] for r in results] == [w for w, _, _ in cases]
    for result in results:
        assert result["refused"] and result["weights"] in result["refused"], result
        assert result["seconds"] < 5 and result["grew_mib"] < 256, result
    gru, frame, custom = (r["refused"] for r in results)
    assert "do not fit cnn_gru: wrong shape rnn.weight_ih_l0 [24, 128] (needs [196608, 128])" \
        in gru
    for message in (frame, custom):  # the stride-0 heads: shapes match, the data does not
        assert "with 1,099,511,627,776 classes needs" in message
        assert "file can back" in message


# -- the archive itself: nothing expands beyond the file ---------------------------
def _zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _entries(**fields: Any) -> dict[str, bytes]:
    """The zip entries torch.save writes for the checkpoint `fields`."""
    raw = checkpoint_bytes(**{"arch": "resnet18", "state_dict": {}, "label_names": ["a"],
                              **fields})
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _never(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("read a refused archive")


def test_a_zip_bomb_data_pkl_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """64 MiB of data.pkl in a 64 KB file: the zip's directory says so, and
    neither zipfile nor torch.load reads a byte of it."""
    entries = _entries()
    (name,) = [n for n in entries if n.endswith("/data.pkl")]
    entries[name] = bytes(64 * 2**20)
    bomb = _zip(tmp_path / "bomb.pt", entries, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2**20
    monkeypatch.setattr(zipfile.ZipFile, "open", _never)
    monkeypatch.setattr(torch, "load", _never)
    _refused_everywhere(bomb, "frame", "data.pkl is 64 MiB, over the 16 MiB")


@pytest.mark.parametrize(("entries", "compression", "needle"), [
    (_entries(), zipfile.ZIP_DEFLATED, "is compressed; torch.save stores"),
    ({**_entries(), "other/data.pkl": b"."}, zipfile.ZIP_STORED, "2 data.pkl entries"),
    ({n: b"\x80\x02garbage" if n.endswith("/data.pkl") else d for n, d in _entries().items()},
     zipfile.ZIP_STORED, "cannot be"),  # driver: data.pkl cannot be read; actor: loaded
], ids=["deflated", "two-pickles", "garbage-pickle"])
def test_odd_archives_are_config_errors_naming_the_file(tmp_path: Path, entries: dict[str, bytes],
                                                        compression: int, needle: str):
    weights = _zip(tmp_path / "odd.pt", entries, compression)
    _refused_everywhere(weights, "frame", needle)


@pytest.mark.parametrize(("entries", "compression", "needle"), [
    ({n: bytes(64 * 2**20) if n.endswith("/data.pkl") else d for n, d in _entries().items()},
     zipfile.ZIP_DEFLATED, "data.pkl is 64 MiB, over the 16 MiB"),
    ({n: b"\x80\x02garbage" if n.endswith("/data.pkl") else d for n, d in _entries().items()},
     zipfile.ZIP_STORED, "cannot be loaded with weights_only=True"),
], ids=["zip-bomb", "garbage-pickle"])
def test_a_training_checkpoint_is_checked_as_weights_are(
        tmp_path: Path, entries: dict[str, bytes], compression: int, needle: str):
    """--resume reads OUT/checkpoints/epoch_N.pt, which anyone with write access
    to OUT may have replaced: the same archive checks, a ConfigError naming it."""
    odd = _zip(tmp_path / "epoch_0001.pt", entries, compression)
    with pytest.raises(ConfigError) as refused:
        load_training_state(str(odd), StorageOptions())
    message = str(refused.value)
    assert "\n" not in message and str(odd) in message and needle in message


THRESHOLD_ECHO = '''
"""A detector that keeps the thresholds it is built with, to be read back."""
from torch import nn


class Echo(nn.Module):
    def __init__(self, num_classes, score_threshold, max_boxes):
        super().__init__()
        self.head = nn.Linear(3, num_classes)
        self.score_threshold, self.max_boxes = score_threshold, max_boxes


def build(num_classes, score_threshold, max_boxes):
    return Echo(num_classes, score_threshold, max_boxes)
'''


def test_the_analysis_options_win_over_a_checkpoints_saved_thresholds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A checkpoint may save detector thresholds; the user's analysis options
    (part of its key) are what the model is built with, or the rows would not
    be what their key says."""
    monkeypatch.syspath_prepend(str(write_module(tmp_path / "code", "echo_det", THRESHOLD_ECHO)))
    weights = tmp_path / "det.pt"
    save_checkpoint(str(weights), arch="echo_det:build", state_dict=linear_head_state(),
                    label_names=["a", "b", "c"],
                    config={"score_threshold": 0.9, "max_boxes": 1})
    _, model = load_model(ModelSpec("echo_det:build", str(weights)), StorageOptions(),
                          "detection", {"score_threshold": 0.2, "max_boxes": 7})
    assert (model.score_threshold, model.max_boxes) == (0.2, 7)
