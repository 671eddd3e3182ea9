"""The car package of the real sample model loads and drives on the sample camera pictures.

Runs in the trainer's environment (TensorFlow). The package `trackday dr car-model` builds
(training/deepracer/car_model.py) is unpacked as the car's model loader unpacks an upload, its
one frozen graph imported with TensorFlow, and fed as the car feeds it (aws-deepracer-inference-
pkg image_process.cpp: the camera frame resized to 160x120 and turned grey, BGR2GRAY; input
`main_level/agent/main/online/network_0/<SENSOR>/<SENSOR>` for clipped PPO, as
aws-deepracer-model-optimizer-pkg names it). The car reads one probability per action.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import dr_samples
from training.deepracer.car_model import build_car_model

tf = pytest.importorskip("tensorflow")
INPUT = "main_level/agent/main/online/network_0/{0}/{0}:0"
POLICY = "main_level/agent/main/online/network_1/ppo_head_0/policy:0"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The best checkpoint's package, unpacked as the car unpacks it."""
    root = tmp_path_factory.mktemp("car")
    model = root / "run" / "model"
    model.mkdir(parents=True)
    for source in dr_samples.model_dir().iterdir():
        os.symlink(source, model / source.name)
    (model / "deepracer_checkpoints.json").write_text(
        json.dumps(
            {
                "best_checkpoint": {"name": "48_Step-28800.ckpt"},
                "last_checkpoint": {"name": "48_Step-28800.ckpt"},
            }
        )
    )
    built = build_car_model(str(root / "run"))
    with tarfile.open(fileobj=io.BytesIO(built.archive), mode="r:gz") as opened:
        opened.extractall(root / "car", filter="data")
    return root / "car"


def camera_frame(picture: Path) -> np.ndarray:
    """A picture as the car's inference node hands it to the network: 160x120 grey."""
    grey = Image.open(picture).convert("RGB").resize((160, 120)).convert("L")
    return np.asarray(grey, dtype=np.float32)[np.newaxis, :, :, np.newaxis]


def test_packaged_model_infers_on_the_sample_pictures(package: Path) -> None:
    graphs = [Path(d) / f for d, _, files in os.walk(package) for f in files if f.endswith(".pb")]
    assert len(graphs) == 1  # the car refuses an upload with more than one
    metadata = json.loads((package / "model_metadata.json").read_text())
    (sensor,) = metadata["sensor"]
    assert metadata["training_algorithm"] == "clipped_ppo"
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graphs[0].read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    pictures = sorted(dr_samples.model_dir().parent.glob("pictures/*.png"))
    assert len(pictures) == 3
    with tf.compat.v1.Session(graph=graph) as session:
        outputs = [
            session.run(POLICY, {INPUT.format(sensor): camera_frame(p)})[0] for p in pictures
        ]
    for probabilities in outputs:
        assert probabilities.shape == (len(metadata["action_space"]),)
        assert np.all(probabilities >= 0) and probabilities.sum() == pytest.approx(1, abs=1e-4)
    assert not np.allclose(outputs[0], outputs[1])  # it looks at the picture
