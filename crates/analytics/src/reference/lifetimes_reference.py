#!/usr/bin/env python3
"""Reference values for the Rust analytics modules (crates/analytics), from `lifetimes`.

Dev tool only: the Rust tests embed the numbers this prints and never run it.

Environment used (Python 3.11):
    python -m venv venv && venv/bin/pip install "numpy<2" "pandas<2" "scipy<1.12" \
        autograd lifetimes==0.11.3 mpmath
(resolved to numpy 1.26.4, pandas 1.5.3, scipy 1.11.4, autograd 1.9.1, mpmath 1.4.1).

Usage:
    venv/bin/python lifetimes_reference.py --write-data   # (re)writes transactions.csv and
                                                          # cdnow_summary.csv next to this file
    venv/bin/python lifetimes_reference.py                # prints Rust literals

What it prints (each block is pasted into lifetimes_reference_tests.rs or special.rs):
  1. summary_data_from_transaction_data (freq="D", and freq_multiplier=7 for weeks) on
     transactions.csv: column sums and the rows of a sample of customers;
  2. BetaGeoFitter().fit on that summary (days): r, alpha, a, b, and the summed log-likelihood
     at those parameters; the largest gradient component of lifetimes' objective there;
  3. for the sample: conditional_probability_alive,
     conditional_expected_number_of_purchases_up_to_time for t = 30, 90, 365 days;
  4. GammaGammaFitter().fit on repeat customers: p, q, v; for the sample
     conditional_expected_average_profit and customer_lifetime_value(bgf, ..., time=12,
     discount_rate=0.01, freq="D");
  5. BetaGeoFitter on lifetimes' bundled CDNOW summary (cdnow_summary.csv, 2357 customers,
     weeks) with the paper's published estimates for comparison;
  6. hyp2f1 reference values from mpmath (30 digits), with scipy's value for information;
  7. the calibration/holdout backtest on lifetimes' bundled CDNOW sample transactions
     (cdnow_transactions.csv, 2357 customers, 6919 lines; calibration to 1997-09-30, holdout
     to 1998-06-30 as in Fader, Hardie & Lee 2005, in days): calibration_and_holdout_data
     column sums, BetaGeoFitter on the calibration columns,
     conditional_expected_number_of_purchases_up_to_time(duration_holdout, ...) summed, per
     calibration frequency 0..6 and 7+ (customers, mean predicted, mean actual), and a sample
     of customers.
"""

import os
import sys

import numpy as np
import pandas as pd
import mpmath
from scipy.special import hyp2f1, gammaln

from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data, calibration_and_holdout_data
from lifetimes.datasets import load_cdnow_summary, load_dataset

HERE = os.path.dirname(os.path.abspath(__file__))
TX_CSV = os.path.join(HERE, "transactions.csv")
CDNOW_CSV = os.path.join(HERE, "cdnow_summary.csv")
CDNOW_TX_CSV = os.path.join(HERE, "cdnow_transactions.csv")
CDNOW_CAL_END = "1997-09-30"
CDNOW_OBS_END = "1998-06-30"

SEED = 20240601
N_CUSTOMERS = 1200
BASE_DAY = 19000  # days since 1970-01-01 (2022-01-08)
END_DAY = BASE_DAY + 364  # observation end
SIM_END_DAY = BASE_DAY + 420  # transactions after END_DAY exist and must be ignored


def generate_transactions():
    """BG/NBD purchases with Gamma-Gamma spend, integer days, some same-day duplicates."""
    rng = np.random.RandomState(SEED)
    rows = []
    for c in range(N_CUSTOMERS):
        lam = rng.gamma(0.7, 1.0 / 20.0)  # purchases per day while alive
        p_drop = rng.beta(0.8, 3.0)
        nu = rng.gamma(3.5, 1.0 / 120.0)  # per-customer spend rate
        day = BASE_DAY + int(rng.randint(0, 364))
        t = float(day)
        while True:
            amount = max(0.01, round(rng.gamma(4.0, 1.0 / nu), 2))
            if rng.rand() < 0.08:  # split into two lines on the same day
                part = max(0.01, round(amount * rng.rand(), 2))
                rows.append((c, int(t), part))
                amount = max(0.01, round(amount - part, 2))
            rows.append((c, int(t), amount))
            if int(t) > day and rng.rand() < p_drop:
                break
            t += rng.exponential(1.0 / lam)
            if t > SIM_END_DAY:
                break
    order = rng.permutation(len(rows))  # unsorted input on purpose
    return [rows[i] for i in order]


def write_data():
    rows = generate_transactions()
    with open(TX_CSV, "w") as f:
        f.write("customer,day,amount\n")
        for c, d, a in rows:
            f.write(f"{c},{d},{a:.2f}\n")
    cd = load_cdnow_summary()
    with open(CDNOW_CSV, "w") as f:
        f.write("frequency,recency,T\n")
        for _, r in cd.iterrows():
            f.write(f"{int(r['frequency'])},{r['recency']:.2f},{r['T']:.2f}\n")
    print(f"wrote {len(rows)} transactions to {TX_CSV} and {len(cd)} rows to {CDNOW_CSV}")
    # CDNOW sample: customer index 1..2357 becomes 0..2356, the date days since 1970-01-01.
    ct = load_dataset("CDNOW_sample.txt", header=None, delim_whitespace=True,
                      names=["customer_id", "customer_index", "date", "quantity", "amount"],
                      dtype={"date": str})
    days = (pd.to_datetime(ct["date"], format="%Y%m%d") - pd.Timestamp("1970-01-01")).dt.days
    with open(CDNOW_TX_CSV, "w") as f:
        f.write("customer,day,amount\n")
        for c, d, a in zip(ct["customer_index"], days, ct["amount"]):
            f.write(f"{int(c) - 1},{int(d)},{a:.2f}\n")
    print(f"wrote {len(ct)} CDNOW sample transactions to {CDNOW_TX_CSV}")


def bgnbd_ll(params, x, tx, T):
    r, alpha, a, b = params
    A1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    A2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    A3 = -(r + x) * np.log(alpha + T)
    A4 = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + tx)
    m = np.maximum(A3, A4)
    return A1 + A2 + m + np.log(np.exp(A3 - m) + (x > 0) * np.exp(A4 - m))


def lit(v):
    return repr(float(v))


def main():
    tx = pd.read_csv(TX_CSV)
    tx["date"] = pd.to_datetime(tx["day"], unit="D")
    end = pd.to_datetime(END_DAY, unit="D")
    s = summary_data_from_transaction_data(
        tx, "customer", "date", monetary_value_col="amount", observation_period_end=end, freq="D"
    )
    sw = summary_data_from_transaction_data(
        tx, "customer", "date", monetary_value_col="amount", observation_period_end=end,
        freq="D", freq_multiplier=7,
    )
    print(f"// lifetimes summary: {len(s)} customers, {(s.frequency > 0).sum()} repeat")
    print(f"const N_SUMMARY: usize = {len(s)};")
    print("/// Column sums of the daily summary: frequency, recency, T, monetary_value.")
    print(f"const SUMMARY_SUMS: [f64; 4] = [{lit(s.frequency.sum())}, {lit(s.recency.sum())}, "
          f"{lit(s['T'].sum())}, {lit(s.monetary_value.sum())}];")

    # Sample: 5 one-time buyers, the 5 heaviest buyers, and 15 others, chosen by seed.
    rng = np.random.RandomState(7)
    one_time = s.index[s.frequency == 0]
    heavy = s.sort_values(["frequency", "recency"], ascending=False).index[:5]
    others = s.index[(s.frequency > 0) & ~s.index.isin(heavy)]
    sample = (list(rng.choice(one_time, 5, replace=False)) + list(heavy)
              + list(rng.choice(others, 15, replace=False)))

    bgf = BetaGeoFitter()
    bgf.fit(s["frequency"], s["recency"], s["T"])
    p = bgf.params_
    params = (p["r"], p["alpha"], p["a"], p["b"])
    ll = bgnbd_ll(params, s.frequency.values, s.recency.values, s["T"].values).sum()
    # Gradient of lifetimes' own objective (mean NLL, log-params, original time units).
    from autograd import grad
    g = grad(BetaGeoFitter._negative_log_likelihood)(
        np.log(np.array(params)), s.frequency.values, s.recency.values, s["T"].values,
        np.ones(len(s)), 0.0)
    print(f"// BetaGeoFitter: max |grad of mean NLL wrt log-params| at the fit = {np.abs(g).max():.3e}")
    print(f"const BG_PARAMS: [f64; 4] = [{', '.join(lit(v) for v in params)}];")
    print(f"const BG_LL: f64 = {lit(ll)};")

    ggf_data = s[(s.frequency > 0) & (s.monetary_value > 0)]
    ggf = GammaGammaFitter()
    ggf.fit(ggf_data["frequency"], ggf_data["monetary_value"])
    gp = ggf.params_
    print(f"// GammaGammaFitter on {len(ggf_data)} repeat customers")
    print(f"const GG_PARAMS: [f64; 3] = [{lit(gp['p'])}, {lit(gp['q'])}, {lit(gp['v'])}];")

    ss = s.loc[sample]
    pa = bgf.conditional_probability_alive(ss.frequency, ss.recency, ss["T"])
    e30 = bgf.conditional_expected_number_of_purchases_up_to_time(30, ss.frequency, ss.recency, ss["T"])
    e90 = bgf.conditional_expected_number_of_purchases_up_to_time(90, ss.frequency, ss.recency, ss["T"])
    e365 = bgf.conditional_expected_number_of_purchases_up_to_time(365, ss.frequency, ss.recency, ss["T"])
    em = ggf.conditional_expected_average_profit(ss.frequency, ss.monetary_value)
    clv = ggf.customer_lifetime_value(bgf, ss.frequency, ss.recency, ss["T"], ss.monetary_value,
                                      time=12, discount_rate=0.01, freq="D")
    print("/// (customer, frequency, recency, T, monetary_value, recency_weeks, T_weeks,")
    print("///  P(alive), E[Y(30)], E[Y(90)], E[Y(365)], E[M], CLV(12 months, 1%, freq D))")
    print("type SampleRow = (u32, u32, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64);")
    print("const SAMPLE: &[SampleRow] = &[")
    for i, cid in enumerate(sample):
        r = s.loc[cid]
        rw = sw.loc[cid]
        vals = [r.recency, r["T"], r.monetary_value, rw.recency, rw["T"],
                np.asarray(pa)[i], np.asarray(e30)[i], np.asarray(e90)[i], np.asarray(e365)[i],
                np.asarray(em)[i], np.asarray(clv)[i]]
        print(f"    ({cid}, {int(r.frequency)}, " + ", ".join(lit(v) for v in vals) + "),")
    print("];")

    cd = pd.read_csv(CDNOW_CSV)
    cbgf = BetaGeoFitter()
    cbgf.fit(cd["frequency"], cd["recency"], cd["T"])
    cp = cbgf.params_
    cparams = (cp["r"], cp["alpha"], cp["a"], cp["b"])
    cll = bgnbd_ll(cparams, cd.frequency.values, cd.recency.values, cd["T"].values).sum()
    print("// CDNOW (weeks); the paper reports r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4")
    print(f"const CDNOW_PARAMS: [f64; 4] = [{', '.join(lit(v) for v in cparams)}];")
    print(f"const CDNOW_LL: f64 = {lit(cll)};")
    e39 = cbgf.conditional_expected_number_of_purchases_up_to_time(39, 2, 30.43, 38.86)
    print(f"// lifetimes E[Y(39) | x=2, t_x=30.43, T=38.86] with the fitted CDNOW params: {float(e39)!r}")

    hyp_cases = []
    for (r, alpha, a, b) in [cparams, (0.5, 10.0, 2.5, 1.2), (1.7, 40.0, 0.3, 0.5)]:
        for x in (0, 3, 60):
            for z in (0.05, 0.55, 0.65, 0.9, 0.995, 0.9995):
                hyp_cases.append((r + x, b + x, a + b + x - 1, z))
                hyp_cases.append((a + b - 1 - r, a - 1, a + b + x - 1, z))
    mpmath.mp.dps = 30
    print("/// (a, b, c, z, 2F1) from mpmath.hyp2f1 at 30 digits; scipy's max rel. deviation: see below")
    print("const HYP2F1_REFERENCE: &[(f64, f64, f64, f64, f64)] = &[")
    worst = 0.0
    for (ha, hb, hc, z) in hyp_cases:
        if hc <= 0 and float(hc).is_integer():
            continue
        ref = float(mpmath.hyp2f1(ha, hb, hc, z))
        sc = hyp2f1(ha, hb, hc, z)
        worst = max(worst, abs(sc - ref) / abs(ref))
        print(f"    ({lit(ha)}, {lit(hb)}, {lit(hc)}, {lit(z)}, {lit(ref)}),")
    print("];")
    print(f"// scipy.special.hyp2f1 max relative deviation from mpmath on these cases: {worst:.3e}")

    cdnow_backtest()


def cdnow_backtest():
    ct = pd.read_csv(CDNOW_TX_CSV)
    ct["date"] = pd.to_datetime(ct["day"], unit="D")
    ch = calibration_and_holdout_data(ct, "customer", "date", calibration_period_end=CDNOW_CAL_END,
                                      observation_period_end=CDNOW_OBS_END, freq="D")
    print(f"// calibration_and_holdout_data on the CDNOW sample: {len(ch)} customers, "
          f"duration_holdout {ch.duration_holdout.iloc[0]}")
    print(f"const CDNOW_SPLIT_N: usize = {len(ch)};")
    print("/// Column sums: frequency_cal, recency_cal, T_cal, frequency_holdout.")
    print(f"const CDNOW_SPLIT_SUMS: [f64; 4] = [{lit(ch.frequency_cal.sum())}, "
          f"{lit(ch.recency_cal.sum())}, {lit(ch.T_cal.sum())}, {lit(ch.frequency_holdout.sum())}];")
    bgf = BetaGeoFitter()
    bgf.fit(ch["frequency_cal"], ch["recency_cal"], ch["T_cal"])
    p = bgf.params_
    print(f"const CDNOW_CAL_PARAMS: [f64; 4] = [{lit(p['r'])}, {lit(p['alpha'])}, {lit(p['a'])}, {lit(p['b'])}];")
    pred = bgf.conditional_expected_number_of_purchases_up_to_time(
        ch["duration_holdout"], ch["frequency_cal"], ch["recency_cal"], ch["T_cal"])
    ch["pred"] = np.asarray(pred)
    print(f"const CDNOW_PREDICTED_TOTAL: f64 = {lit(ch.pred.sum())};")
    print(f"// actual holdout purchases: {ch.frequency_holdout.sum()}, "
          f"mean absolute error {(ch.pred - ch.frequency_holdout).abs().mean():.6f}")
    print(f"const CDNOW_MAE: f64 = {lit((ch.pred - ch.frequency_holdout).abs().mean())};")
    print("/// Per calibration frequency 0..=6 and 7+: (customers, mean predicted, mean actual).")
    print("const CDNOW_BY_FREQUENCY: [(usize, f64, f64); 8] = [")
    group = np.minimum(ch.frequency_cal.values, 7)
    for g in range(8):
        sel = ch[group == g]
        print(f"    ({len(sel)}, {lit(sel.pred.mean())}, {lit(sel.frequency_holdout.mean())}),")
    print("];")
    rng = np.random.RandomState(11)
    sample = sorted(rng.choice(ch.index, 10, replace=False))
    print("/// (customer, frequency_cal, recency_cal, T_cal, frequency_holdout, predicted)")
    print("const CDNOW_SPLIT_SAMPLE: &[(u32, u32, f64, f64, u32, f64)] = &[")
    for cid in sample:
        r = ch.loc[cid]
        print(f"    ({cid}, {int(r.frequency_cal)}, {lit(r.recency_cal)}, {lit(r.T_cal)}, "
              f"{int(r.frequency_holdout)}, {lit(r.pred)}),")
    print("];")


if __name__ == "__main__":
    if "--write-data" in sys.argv:
        write_data()
    else:
        main()
