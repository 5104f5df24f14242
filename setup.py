"""solo_d2: SOLO, Decoupled SOLO and SOLOv2 instance segmentation as a Detectron2 project.

torch, torchvision and detectron2 are installed beforehand (see README.md): they are not on
PyPI in a form pip can resolve for every machine, so they are not declared here.
"""
from setuptools import find_packages, setup

setup(
    name="solo_d2",
    version="0.1.0",
    description="SOLO-family instance segmentation (SOLO, Decoupled SOLO, SOLOv2) for Detectron2",
    packages=find_packages(include=["solo_d2", "solo_d2.*"]),
    python_requires=">=3.9",
    install_requires=[
        "fvcore>=0.1.5",
        "pycocotools>=2.0.2",
        "opencv-python-headless>=4.5",
        "numpy",
        "tqdm",
    ],
    extras_require={"test": ["pytest>=7"]},
)
