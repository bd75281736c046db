"""Baselines from the field's libraries, run in their own virtual environment.

    <venv>/bin/python bench/field_baselines.py IN.parquet OUT.parquet --horizon 28 --country JP

statsforecast and mlforecast pin pandas below 3, the product pins pandas 3 (requirements.lock):
they cannot share one environment, and a bench must not bend the product's pins to get its
baselines. So ``bench.chain`` makes ``.venv-baselines`` on first use (``ensure_env``) and hands this
script the history as Parquet; this file imports nothing of the project and runs under that venv.

Methods (Nixtla's own, untuned, as a practitioner would call them):
- ``four_week_mean``: ``statsforecast.models.SeasonalWindowAverage(season_length=7, window_size=4)``;
- ``autoets``: ``statsforecast.models.AutoETS(season_length=7)`` per series;
- ``lgbm_plain``: ``mlforecast.MLForecast`` with a LightGBM Poisson regressor, lags no shorter than
  the horizon (28, 35, 42, 49, 56 for 28 days), day of week and month, the series as a category,
  and a holiday flag as an exogenous column (one global model over every series).
IN: unique_id, ds (daily, naive), y, is_holiday (history); OUT: unique_id, ds, method, yhat.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

VENV = Path(__file__).resolve().parents[1] / ".venv-baselines"
REQUIREMENTS = ("statsforecast==2.1.1", "mlforecast==1.1.0", "lightgbm==4.7.0", "pandas<3", "pyarrow", "holidays")


def ensure_env() -> Path:
    """The baselines' interpreter, creating the venv on first use (about a minute)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    return python


def main() -> None:
    import numpy as np
    import pandas as pd

    parser = argparse.ArgumentParser()
    parser.add_argument("inp")
    parser.add_argument("out")
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--future", required=True, help="parquet of unique_id, ds, is_holiday to forecast")
    args = parser.parse_args()
    hist = pd.read_parquet(args.inp)
    future = pd.read_parquet(args.future)
    h = args.horizon
    outs, seconds = [], {}

    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalWindowAverage

    t = time.perf_counter()
    # AutoETS and mlforecast need regular series: closed/missing days filled by the weekday median
    full = []
    end = hist["ds"].max()  # every series to the day before the cutoff, so all forecast the same days
    for uid, g in hist.groupby("unique_id"):
        days = pd.date_range(g["ds"].min(), end, freq="D")
        s = g.set_index("ds")["y"].reindex(days)
        s = s.fillna(s.groupby(s.index.dayofweek).transform("median")).fillna(0.0)
        full.append(pd.DataFrame({"unique_id": uid, "ds": days, "y": s.to_numpy()}))
    full = pd.concat(full, ignore_index=True)
    holidays = set(pd.concat([hist.loc[hist["is_holiday"] == 1, "ds"], future.loc[future["is_holiday"] == 1, "ds"]]))
    full["is_holiday"] = full["ds"].isin(holidays).astype(int)
    sf = StatsForecast(models=[AutoETS(season_length=7), SeasonalWindowAverage(season_length=7, window_size=4)],
                       freq="D", n_jobs=1)
    fc = sf.forecast(df=full[["unique_id", "ds", "y"]], h=h + 7)
    outs.append(fc.rename(columns={"AutoETS": "yhat"})[["unique_id", "ds", "yhat"]].assign(method="autoets"))
    outs.append(fc.rename(columns={"SeasWA": "yhat"})[["unique_id", "ds", "yhat"]].assign(method="four_week_mean"))
    seconds["autoets"] = time.perf_counter() - t

    import lightgbm as lgb
    from mlforecast import MLForecast

    t = time.perf_counter()
    lags = [h + 7 * k for k in range(5)]
    train = full.assign(unique_id=full["unique_id"].astype(str))  # mlforecast needs regular series too
    fcst = MLForecast(models={"lgbm": lgb.LGBMRegressor(objective="poisson", n_estimators=300, learning_rate=0.05,
                                                         verbose=-1, num_threads=1)},
                      freq="D", lags=lags, date_features=["dayofweek", "month"])
    fcst.fit(train[["unique_id", "ds", "y", "is_holiday"]], static_features=[])
    fut = future.assign(unique_id=future["unique_id"].astype(str))
    horizon = int((fut["ds"].max() - train["ds"].max()).days)
    pred = fcst.predict(h=horizon, X_df=fut[["unique_id", "ds", "is_holiday"]])
    pred = pred.rename(columns={"lgbm": "yhat"})
    pred["unique_id"] = pred["unique_id"].astype(hist["unique_id"].dtype)
    outs.append(pred[["unique_id", "ds", "yhat"]].assign(method="lgbm_plain"))
    seconds["lgbm_plain"] = time.perf_counter() - t

    out = pd.concat(outs, ignore_index=True)
    out["yhat"] = np.maximum(out["yhat"].astype(float), 0.0)
    out.attrs["seconds"] = seconds
    out.to_parquet(args.out)
    print(seconds)


if __name__ == "__main__":
    main()
