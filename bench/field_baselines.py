"""Baselines from the field's libraries, run in their own virtual environment.

    <venv>/bin/python bench/field_baselines.py IN.parquet OUT.parquet --future FUTURE.parquet \
        --horizon 28 [--freq D|h] [--season 7|168]

statsforecast and mlforecast pin pandas below 3, the product pins pandas 3 (requirements.lock):
they cannot share one environment, and a bench must not bend the product's pins to get its
baselines. So ``bench.baselines`` makes ``.venv-baselines`` on first use (``ensure_env``) and hands
this script the history as Parquet; this file imports nothing of the project and runs under that venv.

Methods (Nixtla's own, untuned, as a practitioner would call them):
- ``four_week_mean``: ``statsforecast.models.SeasonalWindowAverage(season_length, window_size=4)``;
- ``autoets``: ``statsforecast.models.AutoETS(season_length=7)`` per series (daily data only:
  ETS has no weekly season of 168 hours), ``Naive`` where a series is too short for ETS;
- ``lgbm_plain``: ``mlforecast.MLForecast`` with a LightGBM Poisson regressor, five seasonal lags
  no shorter than the horizon (28, 35, ..., 56 days for 28 days; 14, ..., 42 for 14; 168, 336, ...
  hours for a week of hours), day of week (and hour), month, the series as a category, and a
  holiday flag as an exogenous column (one global model over every series).
IN: unique_id, ds (naive), y, is_holiday (history); FUTURE: unique_id, ds, is_holiday, every period
from the history's end to the last one forecast; OUT: unique_id, ds, method, yhat.
"""

from __future__ import annotations

import argparse
import math
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


def regular(hist, freq: str):
    """Every series to the history's last period, gaps (closed or missing periods) filled by the
    median of the same weekday (and hour): AutoETS and mlforecast need regular series."""
    import pandas as pd

    end, full = hist["ds"].max(), []
    for uid, g in hist.groupby("unique_id"):
        periods = pd.date_range(g["ds"].min(), end, freq=freq)
        s = g.set_index("ds")["y"].reindex(periods)
        slot = periods.dayofweek * 24 + (periods.hour if freq == "h" else 0)
        s = s.fillna(s.groupby(slot).transform("median")).fillna(0.0)
        full.append(pd.DataFrame({"unique_id": uid, "ds": periods, "y": s.to_numpy()}))
    return pd.concat(full, ignore_index=True)


def main() -> None:
    import numpy as np
    import pandas as pd

    parser = argparse.ArgumentParser()
    parser.add_argument("inp")
    parser.add_argument("out")
    parser.add_argument("--horizon", type=int, default=28, help="periods ahead the lags must reach past")
    parser.add_argument("--future", required=True, help="parquet of unique_id, ds, is_holiday to forecast")
    parser.add_argument("--freq", default="D", choices=("D", "h"))
    parser.add_argument("--season", type=int, default=7, help="periods in a week")
    args = parser.parse_args()
    hist, future = pd.read_parquet(args.inp), pd.read_parquet(args.future)
    h, season, outs, seconds = args.horizon, args.season, [], {}

    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, Naive, SeasonalWindowAverage

    t = time.perf_counter()
    full = regular(hist, args.freq)
    flags = pd.concat([hist[["unique_id", "ds", "is_holiday"]], future[["unique_id", "ds", "is_holiday"]]])
    full = full.merge(flags.drop_duplicates(["unique_id", "ds"]), on=["unique_id", "ds"], how="left")
    full["is_holiday"] = full["is_holiday"].fillna(0).astype(int)
    steps = int((future["ds"].max() - full["ds"].max()) / pd.Timedelta(1, unit=args.freq))
    models = [SeasonalWindowAverage(season_length=season, window_size=4)]
    if args.freq == "D":
        models.insert(0, AutoETS(season_length=season))
    # a series too short for ETS (a new menu item) gets the last value, statsforecast's own fallback
    fc = StatsForecast(models=models, freq=args.freq, n_jobs=1, fallback_model=Naive()).forecast(
        df=full[["unique_id", "ds", "y"]], h=steps)
    outs.append(fc.rename(columns={"SeasWA": "yhat"})[["unique_id", "ds", "yhat"]].assign(method="four_week_mean"))
    if args.freq == "D":
        outs.append(fc.rename(columns={"AutoETS": "yhat"})[["unique_id", "ds", "yhat"]].assign(method="autoets"))
    seconds["statsforecast"] = time.perf_counter() - t

    import lightgbm as lgb
    from mlforecast import MLForecast

    t = time.perf_counter()
    first = math.ceil(h / season) * season
    dates = ["dayofweek", "month"] + (["hour"] if args.freq == "h" else [])
    fcst = MLForecast(models={"lgbm": lgb.LGBMRegressor(objective="poisson", n_estimators=300, learning_rate=0.05,
                                                         verbose=-1, num_threads=1)},
                      freq=args.freq, lags=[first + season * k for k in range(5)], date_features=dates)
    train = full.assign(unique_id=full["unique_id"].astype(str))
    fcst.fit(train[["unique_id", "ds", "y", "is_holiday"]], static_features=[])
    fut = future.assign(unique_id=future["unique_id"].astype(str))
    fut = fut[fut["ds"] > full["ds"].max()]
    pred = fcst.predict(h=steps, X_df=fut[["unique_id", "ds", "is_holiday"]]).rename(columns={"lgbm": "yhat"})
    pred["unique_id"] = pred["unique_id"].astype(hist["unique_id"].dtype)
    outs.append(pred[["unique_id", "ds", "yhat"]].assign(method="lgbm_plain"))
    seconds["lgbm_plain"] = time.perf_counter() - t

    out = pd.concat(outs, ignore_index=True)
    out["yhat"] = np.maximum(out["yhat"].astype(float), 0.0)
    out.to_parquet(args.out)
    print(seconds)


if __name__ == "__main__":
    main()
