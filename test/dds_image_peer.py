"""A peer process for test_dds_images.py: publishes or receives sensor_msgs/Image over real DDS.

    python dds_image_peer.py publish N   # waits for a subscriber, sends N images, waits for the ack
    python dds_image_peer.py receive N   # receives N images, prints their sha256 as JSON, acks

Discovery is awaited through publisher/subscription counts, never with a fixed sleep.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import UInt32

from firework_common.ros_images import image_to_msg, msg_to_image

TOPIC = "/robot_0/camera/agentview/image_raw"
ACK = "/test/ack"
QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
TIMEOUT_S = 30.0


def frame(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, size=(84, 84, 3), dtype=np.uint8)


def spin_until(node, predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        rclpy.spin_once(node, timeout_sec=0.05)


def publish(n: int) -> None:
    node = rclpy.create_node("image_publisher")
    pub = node.create_publisher(Image, TOPIC, QOS)
    acked = []
    node.create_subscription(UInt32, ACK, lambda m: acked.append(m.data), QOS)
    spin_until(node, lambda: pub.get_subscription_count() > 0, "the image subscriber")
    for i in range(n):
        pub.publish(image_to_msg(frame(i), frame_id="robot_0/agentview"))
    spin_until(node, lambda: acked, "the receiver's ack")
    node.destroy_node()


def receive(n: int) -> None:
    node = rclpy.create_node("image_receiver")
    got: list[str] = []
    encodings = set()

    def on_image(msg: Image) -> None:
        encodings.add(msg.encoding)
        got.append(hashlib.sha256(msg_to_image(msg).tobytes()).hexdigest())

    node.create_subscription(Image, TOPIC, on_image, QOS)
    ack = node.create_publisher(UInt32, ACK, QOS)
    spin_until(node, lambda: len(got) >= n, f"{n} images")
    spin_until(node, lambda: ack.get_subscription_count() > 0, "the publisher's ack subscription")
    ack.publish(UInt32(data=len(got)))
    # Keep the node alive until the ack is matched and delivered (reliable QoS).
    ack.wait_for_all_acked(rclpy.duration.Duration(seconds=TIMEOUT_S))
    print(json.dumps({"sha256": got, "encodings": sorted(encodings)}), flush=True)
    node.destroy_node()


if __name__ == "__main__":
    rclpy.init()
    try:
        {"publish": publish, "receive": receive}[sys.argv[1]](int(sys.argv[2]))
    finally:
        rclpy.try_shutdown()
