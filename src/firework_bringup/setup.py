"""Launch files, parameters and RViz configuration for the firework fleet. No code."""
from glob import glob

from setuptools import setup

package_name = "firework_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=[],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # launch/ and config/ are symlinks to the workspace's top-level folders: one source of truth.
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="Launch files, parameters and RViz configuration for the firework fleet. No code.",
    license="Apache-2.0",
)
