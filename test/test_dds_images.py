"""Two separate processes exchange sensor_msgs/Image over real DDS (Fast DDS, localhost only)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PEER = Path(__file__).with_name("dds_image_peer.py")
pytestmark = pytest.mark.dds


def test_images_cross_processes_byte_exact():
    sys.path.insert(0, str(PEER.parent))
    from dds_image_peer import frame

    n = 20
    env = dict(os.environ)
    receiver = subprocess.Popen([sys.executable, str(PEER), "receive", str(n)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    publisher = subprocess.Popen([sys.executable, str(PEER), "publish", str(n)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = receiver.communicate(timeout=60)
        assert receiver.returncode == 0, err
        pub_out, pub_err = publisher.communicate(timeout=60)
        assert publisher.returncode == 0, pub_err
    finally:
        for p in (receiver, publisher):
            if p.poll() is None:
                p.kill()
    received = json.loads(out.strip().splitlines()[-1])
    expected = [hashlib.sha256(frame(i).tobytes()).hexdigest() for i in range(n)]
    assert received["sha256"] == expected
    assert received["encodings"] == ["rgb8"]


def test_image_conversion_rejects_wrong_layout():
    from firework_common.ros_images import image_to_msg, msg_to_image

    with pytest.raises(ValueError, match="HxWx3 uint8"):
        image_to_msg(np.zeros((84, 84, 3), dtype=np.float32))
    msg = image_to_msg(np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3))
    msg.encoding = "mono16"
    with pytest.raises(ValueError, match="mono16"):
        msg_to_image(msg)
    msg.encoding = "bgr8"
    np.testing.assert_array_equal(msg_to_image(msg), np.arange(60, dtype=np.uint8).reshape(4, 5, 3)[..., ::-1])
