"""solo_d2: SOLO, Decoupled SOLO and SOLOv2 instance segmentation as a Detectron2 project.

torch, torchvision and detectron2 are installed beforehand (see README.md): they are not on
PyPI in a form pip can resolve for every machine, so they are not declared here.
"""
import os
import shutil

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.realpath(__file__))


def ship_configs() -> None:
    """Make ``solo_d2/configs`` the repository's ``configs/`` (a symlink; a copy where symlinks
    fail), so that the yaml files and their LazyConfig twins (.py) install with the package and
    ``solo_d2.model_zoo`` finds them from any folder, as Detectron2 ships its model-zoo configs."""
    source = os.path.join(HERE, "configs")
    destination = os.path.join(HERE, "solo_d2", "configs")
    if not os.path.isdir(source):  # building from an sdist: the copy is already there
        return
    if os.path.islink(destination):
        os.unlink(destination)
    elif os.path.isdir(destination):
        shutil.rmtree(destination)
    try:
        os.symlink(source, destination)
    except OSError:
        shutil.copytree(source, destination)


ship_configs()

# Optional dependencies, by use (pip install -e ".[deploy]"); "test" is what the suite needs
EXTRAS = {
    # export, int8 / bf16, ONNX Runtime and OpenVINO (docs/DEPLOYMENT.md)
    "deploy": ["onnx>=1.14", "onnxruntime>=1.16", "openvino>=2024.0"],
    # Detectron2's ViT backbone (configs/SOLOv2_ViTDet_B_LSJ.py) takes DropPath and Mlp from timm
    "vit": ["timm>=0.9"],
    # PQ of panoptic models where panopticapi is missing (docs/PANOPTIC.md)
    "panoptic": ["torchmetrics>=1.0"],
}
EXTRAS["test"] = ["pytest>=7", *EXTRAS["deploy"], *EXTRAS["vit"], *EXTRAS["panoptic"]]

setup(
    name="solo_d2",
    version="0.1.0",
    description="SOLO-family instance segmentation (SOLO, Decoupled SOLO, SOLOv2) for Detectron2",
    license="Apache-2.0",
    packages=find_packages(include=["solo_d2", "solo_d2.*"]),
    package_data={
        "solo_d2": ["configs/*.yaml", "configs/**/*.yaml", "configs/*.py", "configs/**/*.py"]
    },
    python_requires=">=3.9",
    install_requires=[
        "fvcore>=0.1.5",
        "pycocotools>=2.0.2",
        "opencv-python-headless>=4.5",
        "numpy",
        "tqdm",
    ],
    extras_require=EXTRAS,
)
