"""Turns a round's rosbags into training data, retrains policy and error predictors, publishes the next round's models."""
from setuptools import find_packages, setup

package_name = "firework_learner"

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
    description="Turns a round's rosbags into training data, retrains policy and error predictors, publishes the next round's models.",
    license="Apache-2.0",
)
