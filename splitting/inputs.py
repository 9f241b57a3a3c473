"""Model inputs as an end device has them: uint8 camera images, and their conversion to model input.

The offload action sends the uint8 image itself (1 byte per element); every split converts it on the
device first. Conversion: ``(x / 255 - mean) / std`` with the ImageNet statistics for 3-channel inputs
(a plain ``x / 255`` for other channel counts).
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_images(input_shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Seeded random uint8 images of ``input_shape`` (N, C, H, W or any shape)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randint(0, 256, tuple(input_shape), dtype=torch.uint8, generator=generator)


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """Convert uint8 images to the float32 tensor the model takes (normalised as documented above)."""
    x = images.to(torch.float32).div_(255.0)
    if x.dim() == 4 and x.shape[1] == 3:
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = x.sub_(mean).div_(std)
    return x
