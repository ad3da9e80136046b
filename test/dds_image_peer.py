"""A peer process for test_dds_images.py: publishes or receives sensor_msgs/Image over real DDS.

    python dds_image_peer.py publish N   # waits for a subscriber, sends N images, waits for the ack
    python dds_image_peer.py receive N   # receives N images, prints their sha256 as JSON, acks

Discovery is awaited through publisher/subscription counts, never with a fixed sleep.

Teardown is bounded. Tearing down rclpy + Fast DDS occasionally hangs (here: 2 of ~100 runs under
pytest, once in CI; the receiver had already printed its result). What crosses DDS is this test's
subject, not the library's teardown, so a peer whose work is done gives teardown TEARDOWN_TIMEOUT_S,
then dumps every thread's stack to stderr after TEARDOWN_HANG_MARKER (the test turns that into a
warning) and exits. The work itself is bounded by TIMEOUT_S per wait, and the whole process by
WATCHDOG_S, so a hang anywhere else fails the test with a stack trace instead of stalling it.
"""
from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import UInt32

from firework_common.ros_images import image_to_msg, msg_to_image

TOPIC = "/robot_0/camera/agentview/image_raw"
ACK = "/test/ack"
# Transient local: discovery is not symmetric. The publisher sees the subscriber matched before the
# subscriber has matched the publisher, and a volatile reader that matches late may skip what was
# written before (then the receiver times out short of N). With transient local, the writer keeps
# the last `depth` (>= N) samples for every reader that matches, in whatever order.
QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
TIMEOUT_S = 30.0
TEARDOWN_TIMEOUT_S = 10.0
WATCHDOG_S = 3 * TIMEOUT_S + TEARDOWN_TIMEOUT_S
TEARDOWN_HANG_MARKER = "dds_image_peer: teardown hung"


def frame(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, size=(84, 84, 3), dtype=np.uint8)


def spin_until(node, predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        rclpy.spin_once(node, timeout_sec=0.05)


def publish(node, n: int) -> None:
    pub = node.create_publisher(Image, TOPIC, QOS)
    acked = []
    node.create_subscription(UInt32, ACK, lambda m: acked.append(m.data), QOS)
    spin_until(node, lambda: pub.get_subscription_count() > 0, "the image subscriber")
    for i in range(n):
        pub.publish(image_to_msg(frame(i), frame_id="robot_0/agentview"))
    spin_until(node, lambda: acked, "the receiver's ack")
    print(json.dumps({"published": n, "acked": acked[0]}), flush=True)


def receive(node, n: int) -> None:
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


def teardown(node) -> None:
    node.destroy_node()
    rclpy.try_shutdown()


def teardown_bounded(node) -> None:
    """Tear down in a daemon thread; if it has not finished in time, report where it hangs."""
    worker = threading.Thread(target=teardown, args=(node,), daemon=True)
    worker.start()
    worker.join(TEARDOWN_TIMEOUT_S)
    if worker.is_alive():
        print(f"{TEARDOWN_HANG_MARKER} for {TEARDOWN_TIMEOUT_S:.0f} s; stacks:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


def main(role: str, n: int) -> None:
    roles = {"publish": (publish, "image_publisher"), "receive": (receive, "image_receiver")}
    if role not in roles:
        raise SystemExit(f"role must be one of {sorted(roles)}, got {role!r}")
    run, node_name = roles[role]
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    rclpy.init()
    node = rclpy.create_node(node_name)
    try:
        run(node, n)
    finally:
        teardown_bounded(node)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: Fast DDS' static destructors run there and can hang the same way.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
