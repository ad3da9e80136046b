"""numpy <-> sensor_msgs/msg/Image without cv_bridge (the ROS 2 cv_bridge is not installable here,
and PyPI's `cv-bridge` is the ROS 1 build). Imports message types only, never rclpy."""
from __future__ import annotations

import numpy as np

_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


def image_to_msg(img: np.ndarray, stamp=None, frame_id: str = ""):
    """HxWx3 uint8 RGB -> sensor_msgs/msg/Image (rgb8). `tobytes()` is ~1000x faster than
    assigning the numpy array to msg.data."""
    from sensor_msgs.msg import Image

    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 uint8 RGB, got shape {img.shape} dtype {img.dtype}")
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(img).tobytes()
    return msg


def msg_to_image(msg) -> np.ndarray:
    """sensor_msgs/msg/Image (rgb8 or bgr8) -> HxWx3 uint8 RGB, a copy-free view where possible."""
    channels = _CHANNELS.get(msg.encoding)
    if channels != 3:
        raise ValueError(f"image encoding must be rgb8 or bgr8, got {msg.encoding!r}")
    if msg.step != msg.width * 3:
        raise ValueError(f"image step {msg.step} != width*3 ({msg.width * 3}): padded rows are not supported")
    img = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, (bytes, memoryview)) else msg.data,
                        dtype=np.uint8)
    if img.size != msg.height * msg.width * 3:
        raise ValueError(f"image data has {img.size} bytes, expected {msg.height}x{msg.width}x3")
    img = img.reshape(msg.height, msg.width, 3)
    return img[..., ::-1] if msg.encoding == "bgr8" else img
