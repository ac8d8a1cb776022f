"""Package discovery that pyproject.toml alone cannot express: the top-level resources/
folder is installed as the package ``viewer.resources``."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["viewer", "viewer.*"]) + ["viewer.resources"],
    package_dir={"viewer.resources": "resources"},
)
