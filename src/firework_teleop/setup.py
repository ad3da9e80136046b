"""Command mux that hands control to a human operator when the monitor flags an error, and gives it back."""
from setuptools import find_packages, setup

package_name = "firework_teleop"

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
    description="Command mux that hands control to a human operator when the monitor flags an error, and gives it back.",
    license="Apache-2.0",
)
