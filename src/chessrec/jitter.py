"""Training-time jitter of square crops: geometry, mirror, colours and noise, in one resampling and one affine pass.

A rendered board's corners are exact and its colours clean; real photos are neither.  Each training
batch is therefore cut again at random (shift, zoom, rotation, mirror) and recoloured (gain, colour
balance, bias, sensor noise).  The jitter was a quarter of a training step's time when it ran as
separate passes (normalise, resample, mirror, recolour, draw fresh noise); here the mirror rides in
the resampling's affine map, the normalisation in the recolouring's, and the noise comes from a bank
drawn once (``benchmarks/bench_training.py`` times a whole step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from chessrec.inference.card import Preprocessing

#: standard deviation of the sensor noise added to a network input (which spans about -0.5..0.5)
NOISE_SIGMA = 0.02


@dataclass(frozen=True)
class CropJitter:
    """The largest random change of a training crop's geometry: a shift (a fraction of the crop's
    height and width), a zoom in or out (relative), a rotation (degrees).

    Without it every epoch shows each square cut the same way, and the networks learn that exact
    cut: shifting test crops by 2 px cost 0.8 points per square.  Real photos' corners are clicked
    by hand or located, and are off by a few pixels.
    """

    shift: float = 0.0
    zoom: float = 0.0
    rotation_deg: float = 0.0

    @classmethod
    def of(cls, train) -> CropJitter:
        """The jitter a ``train`` config section (:class:`chessrec.config.TrainConfig`) asks for."""
        return cls(train.crop_shift, train.crop_zoom, train.crop_rotation_deg)

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.zoom > 0 or self.rotation_deg > 0


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform draws in -1..1."""
    return torch.rand(shape, generator=generator, device=device) * 2 - 1


def crop_affines(b: int, h: int, w: int, jitter: CropJitter, mirror: bool,
                 generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """(b, 2, 3) affine maps in ``F.affine_grid``'s convention: each crop shifted, zoomed and turned
    at random within ``jitter`` and, with ``mirror``, mirrored left-right with probability 1/2
    (pieces look alike mirrored)."""
    zoom = 1.0 + jitter.zoom * _uniform((b,), generator, device)
    turn = torch.deg2rad(jitter.rotation_deg * _uniform((b,), generator, device))
    shift = 2 * jitter.shift * _uniform((b, 2), generator, device)  # the grid's coordinates span -1..1
    flip = torch.ones(b, device=device)
    if mirror:
        flip = torch.where(torch.rand(b, generator=generator, device=device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(turn) / zoom, torch.sin(turn) / zoom
    # a mirrored crop samples its source at -x: the map's x column changes sign
    return torch.stack([torch.stack([cos * flip, -sin * h / w, shift[:, 0]], dim=1),
                        torch.stack([sin * w / h * flip, cos, shift[:, 1]], dim=1)], dim=1)


def sampling_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, (b, c, h, w), align_corners=False)``, written out by broadcasting:
    the same grid (to float rounding) in a tenth of the time on a CPU (0.6 against 7.7 ms for 256
    crops of 80 x 40)."""
    b = theta.shape[0]
    xs = ((torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1).view(1, 1, w)
    ys = ((torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1).view(1, h, 1)
    t = theta.reshape(b, 6, 1, 1)
    grid = torch.empty((b, h, w, 2), device=theta.device, dtype=theta.dtype)
    torch.add(t[:, 0] * xs, t[:, 1] * ys + t[:, 2], out=grid[..., 0])
    torch.add(t[:, 3] * xs, t[:, 4] * ys + t[:, 5], out=grid[..., 1])
    return grid


def resample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The (B, C, H, W) crops resampled through their affine maps (bilinear); pixels from beyond a
    crop repeat its border."""
    grid = sampling_grid(theta.to(x.dtype), x.shape[2], x.shape[3])
    return F.grid_sample(x.contiguous(), grid, mode="bilinear", padding_mode="border", align_corners=False)


class NoiseBank:
    """Fields of Gaussian noise drawn once per crop shape; each crop of a batch gets one at random.

    Drawing a fresh normal per pixel took 8.8 ms of every 256-crop batch of 80 x 40 (the slowest
    part of the jitter); picking rows of a bank takes 0.4 ms.  With 1024 fields per shape, a field
    meets the same crop again about once in a thousand epochs.
    """

    def __init__(self, fields: int = 1024, sigma: float = NOISE_SIGMA):
        self.fields, self.sigma = fields, sigma
        self._banks: dict[tuple, torch.Tensor] = {}

    def draw(self, shape: torch.Size, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """(B, C, H, W) noise of standard deviation ``sigma`` for a batch of that shape."""
        key = (tuple(shape[1:]), str(device))
        if key not in self._banks:
            self._banks[key] = torch.randn((self.fields, *shape[1:]), generator=generator, device=device) * self.sigma
        bank = self._banks[key]
        return bank.index_select(0, torch.randint(self.fields, (shape[0],), generator=generator, device=device))


def photometric_jitter(x: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None,
                       preprocessing: Preprocessing = Preprocessing()) -> torch.Tensor:
    """Crops with raw pixel values (0..255) -> channels-last network input under a random gain,
    colour balance and bias per crop, plus ``noise``.

    The preprocessing (``x / divisor - mean``) and the three factors fold into one per-channel
    affine map, so the batch is read and written once.
    """
    b = x.shape[0]
    gain = 1.0 + 0.25 * _uniform((b, 1, 1, 1), generator, x.device)
    channel = 1.0 + 0.08 * _uniform((b, 3, 1, 1), generator, x.device)
    bias = 0.08 * _uniform((b, 1, 1, 1), generator, x.device)
    scale = gain * channel  # on the normalised input: out = bias + scale * (x / divisor - mean)
    out = torch.empty_like(x, memory_format=torch.channels_last)
    torch.addcmul(bias - preprocessing.mean * scale, x, scale / preprocessing.divisor, out=out)
    return out.add_(noise)


def jitter_crops(crops: torch.Tensor, jitter: CropJitter, noise: NoiseBank, preprocessing: Preprocessing,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 training crops (B, 3, H, W) -> network input, cut again and recoloured at random."""
    b, _, h, w = crops.shape
    x = resample(crops.float(), crop_affines(b, h, w, jitter, mirror=True, generator=generator, device=crops.device))
    return photometric_jitter(x, noise.draw(x.shape, generator, crops.device), generator, preprocessing)
