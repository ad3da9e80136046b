"""Shared firework core: typed configuration, the observation/action schema, episode rosbag2 I/O and the firework CLI."""
from setuptools import find_packages, setup

package_name = "firework_common"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="Shared firework core: typed configuration, the observation/action schema, episode rosbag2 I/O and the firework CLI.",
    license="Apache-2.0",
    entry_points={
        'console_scripts': ['firework = firework_common.cli:main'],
    },
)
