"""Visual world model and per-task error predictors (failure + OOD) with adaptive thresholds, and the monitor node."""
from setuptools import find_packages, setup

package_name = "firework_monitor"

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
    description="Visual world model and per-task error predictors (failure + OOD) with adaptive thresholds, and the monitor node.",
    license="Apache-2.0",
)
