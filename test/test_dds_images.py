"""Two separate processes exchange sensor_msgs/Image over real DDS (Fast DDS, localhost only)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

PEER = Path(__file__).with_name("dds_image_peer.py")
pytestmark = pytest.mark.dds


def test_images_cross_processes_byte_exact():
    sys.path.insert(0, str(PEER.parent))
    from dds_image_peer import TEARDOWN_HANG_MARKER, WATCHDOG_S, frame

    n = 20
    env = dict(os.environ)
    receiver = subprocess.Popen([sys.executable, str(PEER), "receive", str(n)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    publisher = subprocess.Popen([sys.executable, str(PEER), "publish", str(n)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Each peer bounds its own life (WATCHDOG_S) and dumps its stacks when it runs past it.
        out, err = receiver.communicate(timeout=WATCHDOG_S + 10)
        assert receiver.returncode == 0, err
        pub_out, pub_err = publisher.communicate(timeout=WATCHDOG_S + 10)
        assert publisher.returncode == 0, pub_err
    finally:
        for p in (receiver, publisher):
            if p.poll() is None:
                p.kill()
    for role, stderr in (("receiver", err), ("publisher", pub_err)):
        if TEARDOWN_HANG_MARKER in stderr:  # after the data was through: reported, not failed
            warnings.warn(f"the {role}'s rclpy/Fast DDS teardown hung and was cut short:\n{stderr}")
    assert json.loads(pub_out.strip().splitlines()[-1]) == {"published": n, "acked": n}
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
