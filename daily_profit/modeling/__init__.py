"""Next-day P&L modeling: the pure core under the ``profit_model`` and prediction assets.

No Dagster here, and importing the package imports nothing heavy; each module does one job:

- ``dataset``: the modeling frame's columns, usable labels, the gapped time split and folds;
- ``bundle``: the trained bundle (four boosters, offsets, calibrator), its predict and save/load;
- ``train``: ``train_profit_model`` (search, fit, calibrate) -> ``TrainResult``;
- ``boosting``: where the XGBoost fits run, in this process or on a Dask cluster;
- ``conformal``: locally adaptive conformal offsets of the quantiles;
- ``breach``: breach probability calibration and the headroom rule's score;
- ``baselines``: point-in-time baselines from P&L history;
- ``evaluate``: proper scores of model, baselines and oracle on the same rows;
- ``plots``: the comparison figures as PNG;
- ``tracking``: MLflow runs, the pyfunc model, registry aliases, loading;
- ``promotion``: champion/challenger decision and applying it;
- ``scoring``: a feature day's predictions, risk score and drivers;
- ``synthetic``: a synthetic frame of the same shape for tests and benchmarks.
"""
