# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Forecasting from the lake
#
# Reads the Parquet tables of an energy_pipeline lake as they are (pandas, and DuckDB for
# SQL), then plots a week of load with its daily profile, the day-ahead forecast against what
# happened, and the backtest skill of the learned model against the seasonal naive.
#
# Point `ENERGY_PIPELINE_DATA` at your lake (default: `data/` next to your config). Open this
# file in Jupyter with jupytext, or run it as a script.

# %%
import os
from pathlib import Path

import duckdb
import matplotlib.pyplot as plt
import pandas as pd

DATA = Path(os.environ.get("ENERGY_PIPELINE_DATA", "data"))
print(f"lake: {DATA.resolve()}")

# %% [markdown]
# ## The tables
#
# Daily tables are one file per local day (`<table>/YYYY-MM-DD.parquet`), so a folder opens
# as a table. The feature table holds the forecast target of each device per quarter-hour.

# %%
features = pd.read_parquet(DATA / "forecast_features")
forecast = pd.read_parquet(DATA / "load_forecast")
accuracy = pd.read_parquet(DATA / "forecast_accuracy")
print(features.groupby(["device_id", "target_metric"]).size())

# %%
con = duckdb.connect()
daily = con.sql(
    f"""SELECT device_id, day, energy, peak_15min_power, completeness_pct
        FROM read_parquet('{DATA}/daily_device_summary/*.parquet') ORDER BY device_id, day"""
).df()
daily.tail()

# %% [markdown]
# ## A week of load and its daily profile

# %%
week = features[features["day"] >= features["day"].max() - pd.Timedelta(days=6)]
devices = sorted(week["device_id"].unique())
fig, axes = plt.subplots(len(devices), 2, figsize=(12, 3 * len(devices)), squeeze=False)
for row, device in zip(axes, devices, strict=True):
    one = week[week["device_id"] == device]
    row[0].plot(one["local_ts"], one["target"])
    row[0].set_title(f"{device}: {one['target_metric'].iloc[0]} per 15 min, last 7 days")
    profile = features[features["device_id"] == device].groupby("slot_of_day")["target"]
    row[1].plot(profile.mean().index / 4, profile.mean().values, label="mean")
    row[1].fill_between(
        profile.mean().index / 4, profile.quantile(0.1), profile.quantile(0.9), alpha=0.3
    )
    row[1].set_title(f"{device}: daily profile (10-90 %)")
    row[1].set_xlabel("local hour")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The forecast against actuals
#
# The last forecast day that also has actuals: both models, the learned model's 80 % interval.

# %%
actual = features[["device_id", "ts", "target"]]
joined = forecast.merge(actual, on=["device_id", "ts"], how="inner")
last_day = joined["day"].max()
shown = joined[joined["day"] == last_day]
fig, axes = plt.subplots(len(devices), 1, figsize=(12, 3 * len(devices)), squeeze=False)
for ax, device in zip(axes[:, 0], devices, strict=True):
    one = shown[shown["device_id"] == device]
    for model, rows in one.groupby("model"):
        ax.plot(rows["local_ts"], rows["forecast"], label=model)
        if rows["lower"].notna().any():
            ax.fill_between(rows["local_ts"], rows["lower"], rows["upper"], alpha=0.2)
    truth = one.drop_duplicates("ts")
    ax.plot(truth["local_ts"], truth["target"], color="black", linewidth=1, label="actual")
    ax.set_title(f"{device}: day-ahead forecast of {last_day}")
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Backtest skill
#
# `skill_vs_naive` = 1 - MAE(model) / MAE(seasonal naive) over the rolling-origin backtest of
# the 7 days before each as-of day; above 0 the learned model beats the baseline.

# %%
skill = con.sql(
    f"""SELECT day, device_id, skill_vs_naive
        FROM read_parquet('{DATA}/forecast_accuracy/*.parquet')
        WHERE model = 'gradient_boosting' AND skill_vs_naive IS NOT NULL
        ORDER BY day"""
).df()
fig, ax = plt.subplots(figsize=(12, 3))
for device, rows in skill.groupby("device_id"):
    ax.plot(rows["day"], rows["skill_vs_naive"], marker="o", label=device)
ax.axhline(0, color="grey", linewidth=1)
ax.set_title("gradient boosting: skill versus seasonal naive")
ax.legend()
fig.tight_layout()
plt.show()
accuracy.pivot_table(index="device_id", columns="model", values="mae", aggfunc="last")
