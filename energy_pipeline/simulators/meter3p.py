"""A three-phase power analyser on the site's incomer (Janitza UMG 509-PRO and alike).

Its active power is the site load. Each phase carries a fixed share plus a zero-sum
imbalance, at a fixed cos φ per phase, so every quantity is consistent with every other:
P = U · I · cos φ per phase, the phases sum to the totals, S² = P² + Q², and every energy
register is the closed-form integral of its power (see site.Curve), so counters only grow and a
reading at any instant is reproducible.
"""

from __future__ import annotations

import math

import numpy as np

from energy_pipeline.simulators.points import Quantities
from energy_pipeline.simulators.site import SITE_MEAN_W, Curve, SiteWeather, load_curve, noise_curve

PHASES = ("l1", "l2", "l3")
_PHASE_ANGLE = (0.0, -2 * math.pi / 3, 2 * math.pi / 3)


class ThreePhaseMeter:
    def __init__(self, weather: SiteWeather, seed: int, share_of_site: float = 1.0):
        rng = np.random.default_rng([seed, 10])
        self._load = load_curve(weather.seed, weather.tz).scaled(share_of_site)
        self._mean_w = SITE_MEAN_W * share_of_site
        shares = rng.uniform(0.3, 0.37, 3)
        self._shares = shares / shares.sum()
        imbalance = [noise_curve(seed + i, 300.0, 6 * 3600.0, 0.015 * self._mean_w) for i in (1, 2)]
        self._imbalance: list[Curve] = imbalance
        self._cos_phi = rng.uniform(0.9, 0.97, 3)
        self._tan_phi = np.tan(np.arccos(self._cos_phi))
        self._voltage_noise = [noise_curve(seed + 10 + i, 120.0, 2 * 3600.0, 1.6) for i in range(3)]
        self._nominal_v = 230.0 + rng.uniform(-1.5, 2.5)
        self._frequency_noise = noise_curve(seed + 20, 20.0, 900.0, 0.04)
        self._thd_noise = noise_curve(seed + 21, 600.0, 6 * 3600.0, 0.5)

    def _phase_split(self, total: np.ndarray, parts: list[np.ndarray]) -> list[np.ndarray]:
        d1, d2 = parts
        return [
            self._shares[0] * total + d1,
            self._shares[1] * total + d2,
            self._shares[2] * total - d1 - d2,
        ]

    def quantities(self, t: np.ndarray) -> dict[str, Quantities]:
        """Every quantity at the instants `t` (seconds since EPOCH), one array each."""
        p_total = np.asarray(self._load.value(t))
        e_total = np.asarray(self._load.integral(t)) / 3600.0
        p = self._phase_split(p_total, [np.asarray(c.value(t)) for c in self._imbalance])
        e = self._phase_split(
            e_total, [np.asarray(c.integral(t)) / 3600.0 for c in self._imbalance]
        )
        sag = 3.0 * p_total / (2 * self._mean_w)
        u = [self._nominal_v - sag + np.asarray(n.value(t)) for n in self._voltage_noise]
        zeros = np.zeros_like(t)
        q: dict[str, Quantities] = {}
        neutral = np.zeros_like(t, dtype=np.complex128)
        for i, ph in enumerate(PHASES):
            cos_phi, tan_phi = float(self._cos_phi[i]), float(self._tan_phi[i])
            s = p[i] / cos_phi
            current = s / u[i]
            neutral = neutral + current * np.exp(1j * (_PHASE_ANGLE[i] - math.acos(cos_phi)))
            q[f"voltage_{ph}_n"] = u[i]
            q[f"current_{ph}"] = current
            q[f"power_active_{ph}"] = p[i]
            q[f"power_apparent_{ph}"] = s
            q[f"power_reactive_{ph}"] = p[i] * tan_phi
            q[f"cos_phi_{ph}"] = np.full_like(t, cos_phi)
            q[f"energy_active_{ph}"] = e[i]
            q[f"energy_active_import_{ph}"] = e[i]
            q[f"energy_active_export_{ph}"] = zeros
            q[f"energy_apparent_{ph}"] = e[i] / cos_phi
            q[f"energy_reactive_{ph}"] = e[i] * tan_phi
            q[f"energy_reactive_inductive_{ph}"] = e[i] * tan_phi
            q[f"energy_reactive_capacitive_{ph}"] = zeros
            q[f"thd_voltage_{ph}_n"] = 1.8 + 0.6 * np.asarray(self._thd_noise.value(t + 1000 * i))
            # Harmonic share of the current is highest when the load is light.
            q[f"thd_current_{ph}"] = 4.0 + 10.0 * self._mean_w / (p_total + self._mean_w)
        for i, j in ((0, 1), (1, 2), (2, 0)):
            # Phasors 120° apart: |Ua - Ub|² = Ua² + Ub² + Ua·Ub.
            q[f"voltage_{PHASES[i]}_{PHASES[j]}"] = np.sqrt(u[i] ** 2 + u[j] ** 2 + u[i] * u[j])
        q["current_neutral"] = np.abs(neutral)
        for kind in (
            "power_active",
            "power_apparent",
            "power_reactive",
            "energy_active",
            "energy_active_import",
            "energy_active_export",
            "energy_apparent",
            "energy_reactive",
            "energy_reactive_inductive",
            "energy_reactive_capacitive",
        ):
            q[f"{kind}_total"] = q[f"{kind}_l1"] + q[f"{kind}_l2"] + q[f"{kind}_l3"]
        q["frequency"] = 50.0 + np.asarray(self._frequency_noise.value(t))
        q["rotation_field"] = np.ones_like(t)
        return q
