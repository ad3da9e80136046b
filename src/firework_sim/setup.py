"""robosuite (MuJoCo) robots for the simulated fleet, scripted operator experts and episode collection."""
from setuptools import find_packages, setup

package_name = "firework_sim"

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
    description="robosuite (MuJoCo) robots for the simulated fleet, scripted operator experts and episode collection.",
    license="Apache-2.0",
)
