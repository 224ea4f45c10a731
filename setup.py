"""si_jax: Style Intervention for StyleGAN2 in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="si_jax",
    version="0.1.0",
    description="Style Intervention: spatially disentangled StyleGAN2 edits in JAX/Flax",
    packages=find_packages(include=["si_jax", "si_jax.*", "weights_convert", "weights_convert.*"]),
    package_data={"si_jax": ["data/*.safetensors", "data/*.json"]},  # shipped toyfaces generator and judges
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.30",
        "flax>=0.10",
        "optax>=0.2",
        "numpy>=1.24",
        "scikit-learn>=1.3",
        "pillow>=10",
        "absl-py>=2.0",
        "safetensors>=0.4",
    ],
    # skimage: the independent SSIM reference; xdist: the suite runs on 2 processes (`pytest -n 2`, see README)
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.6", "scikit-image>=0.22"]},
)
