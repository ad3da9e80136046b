"""Shared firework core: typed configuration, the observation/action schema, episode rosbag2 I/O and the firework CLI."""
