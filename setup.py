"""featinv: inverting visual representations with convolutional networks (Dosovitskiy & Brox, 2016)."""
from setuptools import find_packages, setup

setup(
    name="featinv",
    version="0.1.0",
    description="Train up-convolutional networks that invert HOG, SIFT, LBP and AlexNet features; "
                "with a small NumPy/CuPy autodiff library",
    packages=find_packages(include=["nn", "nn.*", "minifeat", "minifeat.*", "models", "models.*",
                                    "weights_import", "weights_import.*"]),
    py_modules=["cli"],
    # the bundled photos, the shipped decoders and ImageNet's class names travel with the package
    package_data={"models.data": ["sample/*.jpg", "sample/*.csv"], "models.evaluation": ["pretrained/*.h5"],
                  "models.networks": ["imagenet_classes.txt"]},
    python_requires=">=3.9",
    install_requires=["numpy>=1.22", "scipy>=1.8", "imageio>=2.20", "click>=8.0", "h5py>=3.6"],
    extras_require={
        "gpu": ["cupy-cuda12x"],
        "test": ["pytest>=7"],
        # data-parallel training across processes (mpirun -n K python cli.py train ...; needs an MPI library)
        # and feature extraction on a Dask cluster (train --scheduler)
        "cluster": ["mpi4py>=3.1", "dask[distributed]>=2023.1"],
    },
    entry_points={"console_scripts": ["featinv=cli:main"]},
)
