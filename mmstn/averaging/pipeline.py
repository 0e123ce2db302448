"""source → estimator → STN(s) → averagers: :func:`average_subjects`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from mmstn.averaging._types import Estimator
from mmstn.averaging.accumulate import SubjectAverage, SubjectAverager
from mmstn.averaging.sources import FaceBatch
from mmstn.layers.sampler import bilinear_sample
from mmstn.stn import STN3DMM
from mmstn.theta import Theta, ThetaConvention


@dataclass
class AveragingResult:
    """What :func:`average_subjects` computed.

    Attributes:
        averagers: G → :class:`SubjectAverager` of the outputs of the STN with that grid size.
        names: subject id → name.
        theta: subject id → (n, 6 + D) the θ used for its images (in the STNs' convention).
        keys: subject id → the images' keys.
        examples: subject id → up to ``keep_examples`` input crops (3, H, W).
        estimator: which θ estimator ran.
        seconds: wall time.
        n_skipped: images the source dropped.
    """

    averagers: dict[int, SubjectAverager]
    names: dict[int, str]
    theta: dict[int, torch.Tensor]
    keys: dict[int, list[str]]
    examples: dict[int, list[torch.Tensor]]
    estimator: str
    seconds: float
    n_skipped: int = 0

    def averages(self, grid_size: int | None = None) -> dict[int, SubjectAverage]:
        """subject id → :class:`SubjectAverage` at ``grid_size`` (default: the first STN's)."""
        g = next(iter(self.averagers)) if grid_size is None else int(grid_size)
        return self.averagers[g].results(self.names)

    @property
    def n_images(self) -> int:
        """Images averaged."""
        return sum(len(k) for k in self.keys.values())


def _content_mask(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(B, 1, G, G) 1 where the bilinear sample of every image reads no exactly-black pixel (nor outside it)."""
    content = (images.amax(1, keepdim=True) > 0).to(images.dtype)
    return (bilinear_sample(content, grid, "native") > 0.999).to(images.dtype)


def _true_theta(batch: FaceBatch, stn: STN3DMM) -> torch.Tensor:
    if batch.theta is None:
        raise ValueError("estimator=None uses the true θ, which only synthetic sources have; pass an estimator")
    # the synthetic θ has s = exp(logs)
    return Theta.from_tensor(batch.theta.clone(), ThetaConvention("exp")).as_tensor_for(stn.config)


def average_subjects(stns: STN3DMM | Sequence[STN3DMM], source: Iterable[FaceBatch],
                     estimator: Estimator | None = None, *, snapshots: Sequence[int] = (), keep: bool = False,
                     keep_examples: int = 0, names: Mapping[int, str] | None = None,
                     exclude_black: bool | None = None, progress: bool = False) -> AveragingResult:
    """Estimate θ for every image, flatten it with each STN, and average per subject.

    Args:
        stns: one STN or several (e.g. G = 224 and G = 112) sharing the model and scale base: θ is estimated
            once and flattened by each.
        source: :class:`FaceBatch` es (a :class:`SubjectSource`).
        estimator: θ estimator (:data:`Estimator`); None: the batches' true θ (synthetic sources only).
        snapshots: record averages after these numbers of images (see :class:`SubjectAverager`).
        keep: store every output (uint8) for widgets and :func:`correspondence_score`.
        keep_examples: keep this many input crops per subject (for Fig. 7).
        names: subject id → name (default: the source's ``names``).
        exclude_black: also mask out cells whose sample touches an exactly-black pixel (the padding of a crop
            that reaches outside its photo; the authors' loss layers treat zero pixels the same way). Default:
            the source's ``padded`` flag (True for photo folders and UMDFaces).
        progress: show a ``tqdm`` bar.

    Returns:
        :class:`AveragingResult`.
    """
    stn_list = [stns] if isinstance(stns, STN3DMM) else list(stns)
    if not stn_list:
        raise ValueError("average_subjects needs at least one STN")
    averagers = {int(s.generator.grid_size): SubjectAverager(s.generator.grid_size, 3, snapshots, keep)
                 for s in stn_list}
    names = dict(names if names is not None else getattr(source, "names", {}))
    thetas: dict[int, list[torch.Tensor]] = {}
    keys: dict[int, list[str]] = {}
    examples: dict[int, list[torch.Tensor]] = {}
    if exclude_black is None:
        exclude_black = bool(getattr(source, "padded", False))
    t0 = time.perf_counter()
    iterator: Iterable[FaceBatch] = source
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(source, desc="averaging", unit="batch")
    for batch in iterator:
        if estimator is None:
            theta = _true_theta(batch, stn_list[0])
        else:
            theta = estimator(batch.images, batch.landmarks, batch.vis).detach().float()
        with torch.no_grad():
            for stn in stn_list:
                dtype = stn.generator.morphable.mean.dtype
                out = stn(batch.images.to(dtype), theta.to(dtype))
                mask = out.mask
                if exclude_black:
                    mask = mask * _content_mask(batch.images.to(dtype), out.grid)
                averagers[int(stn.generator.grid_size)].add(out.flattened, mask, batch.subject_ids)
        for k, s in enumerate(batch.subject_ids.tolist()):
            thetas.setdefault(s, []).append(theta[k])
            keys.setdefault(s, []).append(batch.keys[k] if k < len(batch.keys) else "")
            ex = examples.setdefault(s, [])
            if len(ex) < keep_examples:
                ex.append(batch.images[k].clone())
    for s in keys:
        names.setdefault(s, f"subject {s}")
    described = "true θ (synthetic ground truth)" if estimator is None else getattr(
        estimator, "description", getattr(estimator, "__name__", type(estimator).__name__))
    return AveragingResult(averagers, names, {s: torch.stack(v) for s, v in thetas.items()}, keys, examples,
                           str(described), time.perf_counter() - t0, int(getattr(source, "n_skipped", 0)))
