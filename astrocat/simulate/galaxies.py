"""Galaxy Zoo 2-style survey: 424x424 gri colour JPEGs and Kaggle vote fractions.

Writes ``<GalaxyID>.jpg`` and ``training_solutions_rev1.csv`` exactly as the Kaggle
"Galaxy Challenge" ships them (SCIENCE.md section 1), so the bundled model trains and
runs on the same bytes it would see on the real data. The crowd's answers are drawn
from each object's *true* parameters (type, bulge-to-total, bar, arm count and
pitch, axis ratio, merger), so every label is visible in the pixels.

``camera`` (:class:`Camera`) renders the same objects through another survey's camera:
a wider PSF, more sky noise, a coarser pixel scale, other band gains. The objects and
their labels are drawn exactly as before (the labels come from the truth, never the
pixels), so a shifted survey is the default one seen differently: a domain shift with
the same truth.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.special import gamma as gamma_fn

from astrocat.kernels.gz_tree import DecisionTree, galaxy_zoo2
from astrocat.simulate._common import (
    chunk_size,
    chunks,
    kind_rng,
    object_rng,
    resolve_workers,
    run_chunked,
    write_csv,
)
from astrocat.simulate._render import (
    ellipse_radius,
    lupton_rgb,
    pixel_grid,
    rotate,
    sersic,
    sersic_bn,
    unit,
)

SIZE = 424
FIRST_ID = 100000
LABELS = "training_solutions_rev1.csv"

#: Population shares of non-mergers (stars/artifacts are a few per cent in GZ2).
POPULATION = {"elliptical": 0.37, "disk": 0.46, "edgeon": 0.14, "star": 0.02, "artifact": 0.01}

# g, r, i flux ratios (r = 1): old populations are red, star-forming light blue.
# g-r ~ 0.8, r-i ~ 0.35 for ellipticals; g-r ~ 0.45 disks; g-r ~ 0.2 arms (SDSS colours).
SED_OLD = np.array([0.48, 1.0, 1.38], dtype=np.float32)
SED_DISK = np.array([0.78, 1.0, 1.12], dtype=np.float32)
SED_YOUNG = np.array([1.2, 1.0, 0.88], dtype=np.float32)

#: Crowd size-like concentration of the Dirichlet draw of each question's votes.
KAPPA = 25.0


@dataclass(frozen=True)
class Camera:
    """How the survey's camera differs from the default one (every factor 1: today's
    survey, bit for bit).

    ``psf``: factor on the PSF's Gaussian sigma in pixels (drawn per object in 1.2-2.0
    px). ``noise``: factor on the sky noise's sigma (the unit of surface brightness).
    ``pixel_scale``: factor on the angular size of a pixel: objects, their offsets from
    the centre and the separations of merging pairs look ``pixel_scale`` times smaller
    (extended light keeps its surface brightness per pixel, a star its flux; field stars
    stay uniform over the frame; the PSF is ``psf``'s, in the new pixels). ``colour``:
    gains on the g, r and i bands before the asinh colour mapping (signal and noise
    alike, as a different throughput and calibration would). On the command line:
    ``astrocat simulate galaxies --camera psf=1.6,noise=2,pixel_scale=1.3,colour=1.2/1/0.85``.
    """

    psf: float = 1.0
    noise: float = 1.0
    pixel_scale: float = 1.0
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        colour = tuple(float(c) for c in self.colour)
        if len(colour) != 3:
            raise ValueError(f"camera colour: three gains (g/r/i), got {len(colour)}")
        object.__setattr__(self, "colour", colour)
        for name in ("psf", "noise", "pixel_scale"):
            object.__setattr__(self, name, float(getattr(self, name)))
        bad = [f"{k}={v:g}" for k, v in (("psf", self.psf), ("pixel_scale", self.pixel_scale),
                                          *((f"colour[{b}]", g) for b, g in
                                            zip("gri", colour, strict=True)))
               if not (math.isfinite(v) and 0 < v <= 10)]
        if not (math.isfinite(self.noise) and 0 <= self.noise <= 100):
            bad.append(f"noise={self.noise:g}")
        if bad:
            raise ValueError(f"camera {', '.join(bad)}: psf, pixel_scale and the colour "
                             "gains are factors in (0, 10], noise in [0, 100]")

    @classmethod
    def parse(cls, text: str) -> Camera:
        """``psf=1.6,noise=2,pixel_scale=1.3,colour=1.2/1/0.85`` (any subset; the rest
        1); ``ValueError`` naming what is wrong."""
        names = [f.name for f in fields(cls)]
        values: dict[str, object] = {}
        for item in (x.strip() for x in text.split(",")):
            if not item:
                continue
            key, eq, value = (s.strip() for s in item.partition("="))
            key = {"color": "colour"}.get(key, key)
            if not eq or key not in names:
                raise ValueError(f"{item!r}: expected key=value with key one of "
                                 f"{', '.join(names)} (e.g. psf=1.6,noise=2,pixel_scale=1.3,"
                                 "colour=1.2/1/0.85)")
            if key in values:
                raise ValueError(f"{key} given twice")
            try:
                if key == "colour":
                    gains = [float(g) for g in value.split("/")]
                    if len(gains) != 3:
                        raise ValueError
                    values[key] = tuple(gains)
                else:
                    values[key] = float(value)
            except ValueError:
                want = "three gains g/r/i (e.g. 1.2/1/0.85)" if key == "colour" else "a number"
                raise ValueError(f"{key}={value!r}: expected {want}") from None
        return cls(**values)  # type: ignore[arg-type]

    def record(self) -> dict[str, object]:
        """As simulation.json records it."""
        return {"psf": self.psf, "noise": self.noise, "pixel_scale": self.pixel_scale,
                "colour": list(self.colour)}


DEFAULT_CAMERA = Camera()


@dataclass
class Truth:
    """What an object really is; drives both the pixels and the crowd's votes."""

    kind: str
    merger: bool = False
    q: float = 1.0  # projected axis ratio of the whole system (Q7)
    re: float = 20.0  # half-light radius, px
    bt: float = 0.0  # bulge-to-total flux
    incl: float = 0.0  # inclination, deg
    bar: float = 0.0  # bar strength 0..1 (0 = none)
    arms: int = 0  # number of arms (0 = none, 5+ = many)
    arm_vis: float = 0.0  # arm flux share, 0..1 scaled
    pitch: float = 0.0  # deg
    bulge_shape: str = "none"  # rounded | boxy | none (edge-on)
    ring: bool = False
    dust: bool = False


# --------------------------------------------------------------------- truth


def _draw_truth(rng: np.random.Generator, merger: bool) -> Truth:
    kinds = list(POPULATION)
    p = np.array(list(POPULATION.values()))
    if merger:  # the primary of a merger is a galaxy, never a star
        kinds, p = kinds[:3], p[:3]
    kind = str(rng.choice(kinds, p=p / p.sum()))
    t = Truth(kind=kind, merger=merger)
    if kind == "elliptical":
        t.q = float(
            rng.choice(
                [rng.uniform(0.8, 1.0), rng.uniform(0.45, 0.8), rng.uniform(0.25, 0.45)],
                p=[0.4, 0.45, 0.15],
            )
        )
        t.re = float(np.exp(rng.uniform(np.log(10), np.log(35))))
        t.bt = 1.0
    elif kind == "disk":
        t.incl = float(np.degrees(np.arccos(rng.uniform(0.35, 1.0))))
        t.bt = float(
            rng.choice(
                [
                    rng.uniform(0.0, 0.04),
                    rng.uniform(0.04, 0.15),
                    rng.uniform(0.15, 0.4),
                    rng.uniform(0.4, 0.7),
                ],
                p=[0.2, 0.35, 0.3, 0.15],
            )
        )
        t.re = float(np.exp(rng.uniform(np.log(14), np.log(40))))
        if rng.random() < 0.3:
            t.bar = float(rng.uniform(0.35, 1.0))
        if rng.random() < 0.75:
            t.arms = int(rng.choice([1, 2, 3, 4, 5], p=[0.07, 0.5, 0.18, 0.13, 0.12]))
            t.arm_vis = float(rng.uniform(0.2, 1.0))
            t.pitch = float(rng.uniform(7, 40))
        t.ring = bool(rng.random() < 0.06)
        cosi = np.cos(np.radians(t.incl))
        t.q = float(np.sqrt(cosi**2 * (1 - 0.15**2) + 0.15**2))
    elif kind == "edgeon":
        t.incl = float(rng.uniform(82, 90))
        t.dust = bool(rng.random() < 0.4)
        t.q = float(rng.uniform(0.14, 0.24) if t.dust else rng.uniform(0.09, 0.2))
        t.re = float(np.exp(rng.uniform(np.log(24 if t.dust else 16), np.log(45))))
        t.bulge_shape = str(rng.choice(["rounded", "boxy", "none"], p=[0.5, 0.25, 0.25]))
        t.bt = 0.0 if t.bulge_shape == "none" else float(rng.uniform(0.1, 0.4))
    else:  # star / artifact: compact, round
        t.q, t.re = 1.0, 2.0
    return t


def _dirichlet(
    rng: np.random.Generator, p: np.ndarray | list[float], kappa: float = KAPPA
) -> np.ndarray:
    """Noisy crowd shares around probabilities ``p`` (like ~kappa volunteers voting)."""
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum()
    return rng.dirichlet(kappa * p + 0.05)


def _soft(x: float, centres: list[float], width: float) -> np.ndarray:
    c = np.asarray(centres)
    return np.exp(-0.5 * ((x - c) / width) ** 2) + 1e-3


def _raw_votes(t: Truth, rng: np.random.Generator, tree: DecisionTree) -> np.ndarray:
    """Raw per-question shares (37) from the truth; ``tree.normalise`` weights them."""
    v: dict[str, float] = {}

    def put(question: int, shares: np.ndarray) -> None:
        """Shares in the tree's answer order for ``question``."""
        names = [a.kaggle_column for a in tree.answers if a.question == question]
        v.update(zip(names, shares, strict=True))

    def put_named(question: int, shares: dict[str, float]) -> None:
        """Shares keyed by answer text, where a mix-up would mislabel mergers."""
        answers = {a.answer_text: a.kaggle_column for a in tree.answers if a.question == question}
        assert set(shares) == set(answers), (question, sorted(answers))
        v.update({answers[k]: x for k, x in shares.items()})

    # Q1 smooth / features / star
    if t.kind == "elliptical":
        p1 = [0.9, 0.08 + 0.2 * (t.q < 0.4), 0.02]
    elif t.kind == "disk":
        feat = 0.3 + 0.45 * (1 - t.bt) + 0.2 * t.arm_vis * (t.arms > 0) + 0.1 * (t.bar > 0)
        feat = min(feat, 0.95)
        p1 = [1 - feat, feat, 0.02]
    elif t.kind == "edgeon":
        p1 = [0.22, 0.76, 0.02]
    elif t.kind == "star":
        p1 = [0.1, 0.04, 0.86]
    else:
        p1 = [0.12, 0.14, 0.74]
    p1 = np.array(p1, dtype=np.float64)
    if t.merger:
        p1[1] += 0.25
    put(1, _dirichlet(rng, p1))
    # Q2 edge-on
    if t.kind == "edgeon":
        p2 = [0.92, 0.08]
    elif t.kind == "disk":
        e = 0.03 + 0.6 / (1 + np.exp(-(t.incl - 72) / 4))
        p2 = [e, 1 - e]
    elif t.kind == "elliptical":
        p2 = [0.12 if t.q < 0.4 else 0.03, 0.9]
    else:
        p2 = [0.2, 0.8]
    put(2, _dirichlet(rng, p2))
    # Q3 bar
    put(3, _dirichlet(rng, [0.45 + 0.45 * t.bar, 0.55 - 0.45 * t.bar] if t.bar else [0.07, 0.93]))
    # Q4 spiral
    if t.arms:
        s = 0.45 + 0.5 * t.arm_vis
        put(4, _dirichlet(rng, [s, 1 - s]))
    else:
        put(4, _dirichlet(rng, [0.1, 0.9]))
    # Q5 bulge prominence from B/T (none < 0.04 < noticeable < 0.15 < obvious < 0.4 < dominant)
    x = np.log10(t.bt + 0.01)
    put(5, _dirichlet(rng, _soft(x, [-1.85, -1.05, -0.55, -0.2], 0.22)))
    # Q6 odd and Q8 which odd: merger share sets Class8.6 = odd * share.
    if t.merger:
        odd, merge = rng.uniform(0.72, 0.95), rng.uniform(0.68, 0.92)
    else:
        if t.ring:
            odd = rng.uniform(0.3, 0.5)
        elif t.dust:
            odd = rng.uniform(0.25, 0.45)
        elif t.kind in ("artifact", "star"):
            odd = rng.uniform(0.2, 0.4)
        else:
            odd = rng.uniform(0.02, 0.2)
        merge = rng.uniform(0.005, 0.25)
    put_named(6, {"yes": odd, "no": 1 - odd})
    base = {"ring": 0.1, "lens or arc": 0.08, "disturbed": 0.22, "irregular": 0.22,
            "other": 0.28, "dust lane": 0.1}  # fmt: skip
    if t.ring:
        base["ring"] = 1.6
    if t.dust:
        base["dust lane"] = 1.6
    if t.kind in ("artifact", "star"):
        base["other"] = 1.6
    if t.merger:
        base["disturbed"] += 0.4
    rest = _dirichlet(rng, np.array(list(base.values()))) * (1 - merge)
    put_named(8, {**dict(zip(base, rest, strict=True)), "merger": merge})
    # Q7 roundness from the axis ratio
    put(7, _dirichlet(rng, _soft(t.q, [0.92, 0.62, 0.3], 0.12)))
    # Q9 edge-on bulge shape
    if t.kind == "edgeon":
        p9 = {"rounded": [0.75, 0.1, 0.15], "boxy": [0.25, 0.65, 0.1], "none": [0.12, 0.08, 0.8]}[
            t.bulge_shape
        ]
    else:
        p9 = [0.6, 0.1, 0.3] if t.bt > 0.1 else [0.3, 0.1, 0.6]
    put(9, _dirichlet(rng, p9))
    # Q10 winding from pitch angle (tight < 15 deg < medium < 25 deg < loose)
    put(10, _dirichlet(rng, _soft(t.pitch, [10.0, 20.0, 32.0], 5.0) if t.arms else [1, 1, 1]))
    # Q11 arm count; faint arms push votes to "can't tell"
    if t.arms:
        p11 = np.full(6, 0.03)
        k = t.arms - 1
        p11[k] += 0.2 + 0.6 * t.arm_vis
        if k > 0:
            p11[k - 1] += 0.1
        if k < 4:
            p11[k + 1] += 0.08
        p11[5] += 0.08 + 0.4 * (1 - t.arm_vis)
    else:
        p11 = np.array([0.1, 0.2, 0.05, 0.05, 0.05, 0.55])
    put(11, _dirichlet(rng, p11))
    return np.array([v[c] for c in tree.kaggle_columns], dtype=np.float64)


def round_to_tree(values: np.ndarray, tree: DecisionTree, decimals: int = 6) -> np.ndarray:
    """Round to ``decimals`` while keeping every question's sum equal to its parent.

    Works in integer units (largest-remainder rounding per question, parents first), so
    the written CSV obeys the tree to floating-point precision, not just to 1e-decimals.
    """
    scale = 10**decimals
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(v.shape, dtype=np.int64)
    for q in tree.questions:
        block = v[:, q.start : q.stop]
        if q.parent_index is None:
            target = np.full(len(v), scale, dtype=np.int64)
        else:
            target = out[:, q.parent_index]
        total = block.sum(axis=1, keepdims=True)
        share = np.where(total > 0, block / np.where(total > 0, total, 1), 1.0 / block.shape[1])
        exact = share * target[:, None]
        ints = np.floor(exact).astype(np.int64)
        short = target - ints.sum(axis=1)
        order = np.argsort(-(exact - ints), axis=1, kind="stable")
        for j in range(block.shape[1]):
            bump = short > j
            ints[bump, order[bump, j]] += 1
        out[:, q.start : q.stop] = ints
    return out / scale


# -------------------------------------------------------------------- pixels


def _sersic_flux(re: float, n: float, q: float) -> float:
    """Total flux of a Sersic profile with I(r_e) = 1 (Graham & Driver 2005 eq. 4)."""
    b = sersic_bn(n)
    return float(2 * np.pi * re**2 * n * np.exp(b) * b ** (-2 * n) * gamma_fn(2 * n) * q)


@cache
def _survey_grid(pixel_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x)`` of each pixel centre in the default survey's pixels, for a camera whose
    pixels are ``pixel_scale`` times larger, about the frame's centre."""
    yy, xx = pixel_grid(SIZE)
    if pixel_scale == 1.0:
        return yy, xx
    c, s = np.float32(SIZE / 2 - 0.5), np.float32(pixel_scale)
    y, x = c + (yy - c) * s, c + (xx - c) * s
    y.flags.writeable = False
    x.flags.writeable = False
    return y, x


class _Canvas:
    """Three float32 bands (g, r, i) plus the pixel grid; components add light to it.

    Positions and sizes are in the default survey's pixels; ``camera.pixel_scale`` maps
    them onto this camera's (the grid holds each pixel's default-survey position)."""

    def __init__(self, rng: np.random.Generator, camera: Camera = DEFAULT_CAMERA) -> None:
        self.rng = rng
        self.scale = camera.pixel_scale
        self.yy, self.xx = _survey_grid(self.scale)
        self.bands = np.zeros((3, SIZE, SIZE), dtype=np.float32)
        self.dust: tuple[float, np.ndarray] | None = None  # (tau, lane profile)

    def pixel(self, x: float) -> float:
        """This camera's pixel coordinate of the default survey's ``x`` (either axis)."""
        if self.scale == 1.0:
            return x
        c = SIZE / 2 - 0.5
        return c + (x - c) / self.scale

    def surface(self, flux: float) -> float:
        """The flux of an extended component that keeps its surface brightness per pixel
        (pixels ``scale`` times larger: the object covers ``scale**2`` times fewer)."""
        return flux if self.scale == 1.0 else flux / self.scale**2

    def add(self, img: np.ndarray, flux: float, sed: np.ndarray) -> None:
        img = unit(img) * np.float32(flux)
        for b in range(3):
            self.bands[b] += img * sed[b]

    def offsets(self, x0: float, y0: float) -> tuple[np.ndarray, np.ndarray]:
        return self.xx - np.float32(x0), self.yy - np.float32(y0)


def _jitter(rng: np.random.Generator, sed: np.ndarray, amount: float = 0.08) -> np.ndarray:
    return (sed * np.exp(rng.normal(0, amount, 3))).astype(np.float32)


def _draw_galaxy(cv: _Canvas, t: Truth, x0: float, y0: float, flux: float, pa: float) -> None:
    """Render an elliptical, a (barred, spiral, ringed) disk or an edge-on disk."""
    rng = cv.rng
    dx, dy = cv.offsets(x0, y0)
    u, v = rotate(dx, dy, pa)
    if t.kind == "elliptical":
        n = rng.uniform(2.5, 5.5)
        cv.add(sersic(ellipse_radius(u, v, t.q), t.re, n), flux, _jitter(rng, SED_OLD))
        return
    # Disk scale length from the half-light radius of an exponential (r_e = 1.678 h).
    h = t.re / 1.678
    qd = t.q
    rd = ellipse_radius(u, v, qd)
    f_bulge = flux * t.bt
    f_disk = flux - f_bulge
    if t.kind == "edgeon":
        disk = sersic(rd, t.re, 1.0)
        if t.dust:
            tau = rng.uniform(2.0, 4.0)
            lane = np.exp(-0.5 * (v / np.float32(max(1.5, 0.35 * qd * t.re))) ** 2)
            lane *= np.exp(-0.5 * (u / np.float32(2.2 * h)) ** 2)
            cv.dust = (tau, lane)
        cv.add(disk, f_disk, _jitter(rng, SED_DISK))
        if f_bulge > 0:
            rb = t.re * rng.uniform(0.18, 0.35)
            if t.bulge_shape == "boxy":
                r = ellipse_radius(u, v, rng.uniform(0.55, 0.75), rng.uniform(3.0, 4.0))
                cv.add(sersic(r, rb, 1.0), f_bulge, _jitter(rng, SED_OLD))
            else:
                r = ellipse_radius(u, v, rng.uniform(0.7, 0.95))
                cv.add(sersic(r, rb, rng.uniform(2.0, 4.0)), f_bulge, _jitter(rng, SED_OLD))
        return
    # Face-on / inclined disk: work in the de-projected disk plane for arms, bar, ring.
    vd = v / np.float32(qd)
    big_r = np.hypot(u, vd)
    f_arms = f_disk * (0.15 + 0.4 * t.arm_vis) if t.arms else 0.0
    f_ring = f_disk * 0.15 if t.ring else 0.0
    f_bar = f_disk * 0.15 * (0.5 + t.bar) if t.bar else 0.0
    f_smooth = f_disk - f_arms - f_ring - f_bar
    cv.add(sersic(big_r, t.re, 1.0), f_smooth, _jitter(rng, SED_DISK))
    if f_bulge > 0:
        rb = t.re * rng.uniform(0.12, 0.3)
        rbulge = ellipse_radius(u, v, max(qd, rng.uniform(0.75, 0.95)))
        cv.add(sersic(rbulge, rb, rng.uniform(2.0, 4.0)), f_bulge, _jitter(rng, SED_OLD))
    r_in = h * 0.6
    if t.bar:
        bar_len = h * rng.uniform(0.9, 1.6)
        r_in = bar_len
        bpa = rng.uniform(0, np.pi)
        bu, bv = rotate(u, vd, bpa)
        rbar = ellipse_radius(bu, bv, rng.uniform(0.18, 0.3), 2.5)
        cv.add(
            sersic(rbar, bar_len * 0.6, 0.5), f_bar, _jitter(rng, SED_OLD * 0.5 + SED_DISK * 0.5)
        )
    if t.arms:
        phi = np.arctan2(vd, u)
        m = t.arms if t.arms < 5 else int(rng.integers(5, 8))
        wind = np.float32(1.0 / np.tan(np.radians(t.pitch)))
        lnr = np.log(np.maximum(big_r, np.float32(0.5)) / np.float32(r_in))
        phase = np.float32(rng.uniform(0, 2 * np.pi))
        wave = np.float32(0.5) * (np.float32(1.0) + np.cos(m * phi - m * wind * lnr + phase))
        sharp = np.float32(rng.uniform(3.0, 6.0) if m < 5 else 2.0)
        env = np.exp(-big_r / np.float32(1.1 * h)) * (
            np.float32(1.0) - np.exp(-((big_r / np.float32(r_in)) ** 2))
        )
        arms = wave**sharp * env
        if m == 1:  # a lopsided single arm: fade the pattern over half a turn
            arms *= np.exp(-np.maximum(lnr, 0) * wind / np.float32(2.5 * np.pi))
        cv.add(arms, f_arms, _jitter(rng, SED_YOUNG))
    if t.ring:
        rr = h * rng.uniform(1.8, 2.8)
        ring = np.exp(-0.5 * ((big_r - np.float32(rr)) / np.float32(0.12 * rr)) ** 2)
        cv.add(ring, f_ring, _jitter(rng, SED_YOUNG))


def _draw_tails(cv: _Canvas, xc: float, yc: float, sep: float, flux: float) -> None:
    """Two tidal tails: log-spiral arcs leaving the pair in opposite directions."""
    rng = cv.rng
    dx, dy = cv.offsets(xc, yc)
    rho = np.hypot(dx, dy)
    phi = np.arctan2(dy, dx)
    sense = rng.choice([-1.0, 1.0])
    phi0 = rng.uniform(0, 2 * np.pi)
    span = rng.uniform(1.4, 2.8)
    k = rng.uniform(0.3, 0.55)
    rho0 = max(sep * 0.5, 6.0)
    total = np.zeros_like(rho)
    for j, start in enumerate((phi0, phi0 + np.pi)):
        t = np.mod((phi - np.float32(start)) * np.float32(sense), np.float32(2 * np.pi))
        track = np.float32(rho0) * np.exp(np.float32(k) * t)
        width = np.float32(2.0) + np.float32(0.1) * track
        arc = np.exp(-0.5 * ((rho - track) / width) ** 2) * np.exp(-t / np.float32(span))
        arc[t > span * 1.4] = 0.0
        total += arc * np.float32(1.0 if j == 0 else rng.uniform(0.15, 1.0))
    cv.add(total, flux, _jitter(rng, SED_DISK))


def _draw_star(cv: _Canvas, x0: float, y0: float, flux: float, spikes: bool) -> None:
    """Bright star: core (added as a delta, blurred by the PSF), halo and cross spikes."""
    rng = cv.rng
    sed = np.array([rng.uniform(0.5, 1.3), 1.0, rng.uniform(0.8, 1.35)], dtype=np.float32)
    ix, iy = int(round(cv.pixel(x0))), int(round(cv.pixel(y0)))
    for b in range(3):
        cv.bands[b, iy, ix] += np.float32(flux * 0.7 * sed[b])
    dx, dy = cv.offsets(x0, y0)
    r2 = dx * dx + dy * dy
    cv.add((np.float32(1) + r2 / np.float32(16.0)) ** np.float32(-1.6), flux * 0.3, sed)
    if spikes:
        ln = np.float32(rng.uniform(30, 90))
        w = np.float32(0.9)
        sp = np.exp(-np.abs(dx) / ln - 0.5 * (dy / w) ** 2) + np.exp(
            -np.abs(dy) / ln - 0.5 * (dx / w) ** 2
        )
        cv.add(sp, flux * 0.15, sed)


def _draw_trail(cv: _Canvas) -> None:
    """Satellite trail: each band read out at a different time, so offset coloured lines."""
    rng = cv.rng
    theta = rng.uniform(0, np.pi)
    x0, y0 = SIZE / 2 + rng.uniform(-25, 25), SIZE / 2 + rng.uniform(-25, 25)
    dx, dy = cv.offsets(x0, y0)
    d = dx * np.float32(np.sin(theta)) - dy * np.float32(np.cos(theta))
    step = rng.uniform(4, 12)
    level = rng.uniform(6, 30)
    for b in range(3):
        if rng.random() < 0.25 and b != 1:
            continue
        off = np.float32((b - 1) * step)
        cv.bands[b] += np.float32(level) * np.exp(-0.5 * ((d - off) / np.float32(1.3)) ** 2)


def render(t: Truth, rng: np.random.Generator, camera: Camera = DEFAULT_CAMERA) -> np.ndarray:
    """424x424x3 uint8 RGB image of one object, through ``camera``.

    The camera draws no random numbers: the same generator draws the same object
    whatever the camera."""
    cv = _Canvas(rng, camera)
    c = SIZE / 2 - 0.5
    x0, y0 = c + rng.uniform(-3, 3), c + rng.uniform(-3, 3)
    pa = rng.uniform(0, np.pi)
    sb_e = float(np.exp(rng.uniform(np.log(6.0), np.log(30.0))))  # I(r_e) in sky sigma
    if t.kind in ("elliptical", "disk", "edgeon"):
        n_eff = 3.5 if t.kind == "elliptical" else 1.0
        # An inclined disk keeps its flux, so its surface brightness rises (toned down).
        flux = sb_e * _sersic_flux(t.re, n_eff, t.q) / np.sqrt(t.q if t.kind != "elliptical" else 1)
        flux = cv.surface(flux)
        if t.merger:
            sep = rng.uniform(0.6, 1.6) * t.re + 8
            sep = min(sep, 70.0)
            ang = rng.uniform(0, 2 * np.pi)
            ratio = rng.uniform(0.35, 1.0)
            xa, ya = x0 - 0.5 * sep * np.cos(ang) * ratio, y0 - 0.5 * sep * np.sin(ang) * ratio
            xb, yb = xa + sep * np.cos(ang), ya + sep * np.sin(ang)
            _draw_galaxy(cv, t, xa, ya, flux, pa)
            comp = Truth(
                kind=str(rng.choice(["elliptical", "disk"])),
                q=rng.uniform(0.5, 1.0),
                re=max(6.0, t.re * rng.uniform(0.4, 0.9)),
                bt=rng.uniform(0.1, 0.5),
            )
            if comp.kind == "elliptical":
                comp.bt = 1.0
            _draw_galaxy(cv, comp, xb, yb, flux * ratio, rng.uniform(0, np.pi))
            _draw_tails(cv, 0.5 * (xa + xb), 0.5 * (ya + yb), sep, flux * rng.uniform(0.15, 0.35))
        else:
            _draw_galaxy(cv, t, x0, y0, flux, pa)
    elif t.kind == "star":
        _draw_star(cv, x0, y0, float(np.exp(rng.uniform(np.log(3e4), np.log(5e5)))), True)
    else:
        if rng.random() < 0.6:  # a faint galaxy behind the trail
            g = Truth(kind="elliptical", q=rng.uniform(0.5, 1), re=rng.uniform(5, 12))
            _draw_galaxy(cv, g, x0, y0, cv.surface(2 * _sersic_flux(g.re, 3.5, g.q)), pa)
        _draw_trail(cv)
    # Dust lane: stronger in g than i (reddening), applied to the galaxy light only.
    if cv.dust is not None:
        tau, lane = cv.dust
        for b, k in enumerate((1.3, 1.0, 0.75)):
            cv.bands[b] *= np.exp(-np.float32(tau * k) * lane)
    # Field stars anywhere in the frame (cores only; the PSF spreads them).
    for _ in range(int(rng.poisson(1.5))):
        ix, iy = rng.integers(0, SIZE, 2)
        f = np.exp(rng.uniform(np.log(30), np.log(1500)))
        sed = np.array([rng.uniform(0.5, 1.3), 1.0, rng.uniform(0.8, 1.35)])
        cv.bands[:, iy, ix] += (f * sed).astype(np.float32)
    # Sky noise is added before the PSF blur: SDSS cut-outs resampled to 424 px carry
    # correlated noise, and it keeps JPEGs near the real files' size. Blurring unit-variance
    # white noise with a Gaussian of sigma s leaves sigma 1 / (2 sqrt(pi) s): undo that.
    psf = rng.uniform(1.2, 2.0) * camera.psf
    noise = rng.standard_normal((3, SIZE, SIZE), dtype=np.float32)
    noise *= np.float32(2 * np.sqrt(np.pi) * psf * camera.noise)
    cv.bands += noise
    for b in range(3):
        cv.bands[b] = gaussian_filter(cv.bands[b], psf, truncate=3.0)
    for b, gain in enumerate(camera.colour):  # the camera's throughput per band
        if gain != 1.0:
            cv.bands[b] *= np.float32(gain)
    g, r, i = cv.bands
    # g, r, i -> blue, green, red with the SDSS asinh colour mapping (Lupton et al. 2004).
    return lupton_rgb(i, r, g, stretch=14.0, q=10, minimum=1.0)


def _encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _chunk(
    start: int,
    stop: int,
    seed: int,
    out: str,
    merger_set: frozenset[int],
    first_id: int,
    camera: Camera = DEFAULT_CAMERA,
) -> list[tuple[int, np.ndarray]]:
    tree = galaxy_zoo2()
    rows = []
    for i in range(start, stop):
        rng = object_rng(seed, "galaxies", i)
        t = _draw_truth(rng, i in merger_set)
        raw = _raw_votes(t, rng, tree)
        img = render(t, rng, camera)
        gid = first_id + i
        Path(out, f"{gid}.jpg").write_bytes(_encode_jpeg(img))
        rows.append((gid, raw))
    return rows


def simulate(
    n: int,
    out: Path,
    seed: int = 0,
    *,
    progress: bool = True,
    workers: int | None = None,
    merger_fraction: float = 0.03,
    first_id: int = FIRST_ID,
    camera: Camera | None = None,
) -> Path:
    """Write n galaxies and the Kaggle label CSV into ``out``; return the CSV path.

    Exactly ``round(merger_fraction * n)`` objects, chosen at random, are mergers.
    ``camera``: another survey's camera (:class:`Camera`; default: the default survey's).
    The objects and the label CSV are the same whatever the camera.
    """
    if not 0.0 <= merger_fraction <= 1.0:
        raise ValueError("merger_fraction must be in [0, 1]")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_merge = int(round(merger_fraction * n))
    merger_set = frozenset(
        int(i) for i in kind_rng(seed, "galaxies").choice(n, n_merge, replace=False)
    )
    w = resolve_workers(workers)
    rows = run_chunked(
        _chunk,
        chunks(n, chunk_size(n, w, cap=32)),
        (int(seed), str(out), merger_set, int(first_id), camera or DEFAULT_CAMERA),
        workers=w,
        progress=progress,
        description="galaxies",
    )
    tree = galaxy_zoo2()
    raw = np.array([r for _, r in rows]).reshape(len(rows), len(tree.answers))
    values = round_to_tree(tree.normalise(raw), tree)
    lines = [
        f"{gid}," + ",".join(f"{x:.6f}" for x in vals)
        for (gid, _), vals in zip(rows, values, strict=True)
    ]
    path = out / LABELS
    write_csv(path, ["GalaxyID", *tree.kaggle_columns], lines)
    return path
