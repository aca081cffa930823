//! The transactions: customers' purchases, baskets, promotions and returns in time order,
//! streamed as the transactions CSV.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use chrono::Datelike;

use super::basket::{Taste, draw_basket, price_line};
use super::calibration::{calibrate, expected_lines, scaled_dropout};
use super::campaign::{Exposure, ExtraOrder, expose};
use super::catalog::build_catalog;
use super::customers::{new_customer, time_of_day};
use super::vocabulary::{CATEGORIES, HOURS, MONTH_TRAFFIC, WEEKDAY_TRAFFIC};
use super::writer::{Day, Writer, write_malformed};
use super::{GenerateOptions, GenerateStats, TRANSACTIONS_HEADER, id_width, invalid};

struct ReturnEvent {
    order: u64,
    customer: u32,
    product: u32,
    unit_cents: i64,
}

/// Writes the transactions CSV in time order, streaming (see the module docs).
pub fn write_transactions<W: Write>(opts: &GenerateOptions, w: W) -> io::Result<GenerateStats> {
    opts.validate().map_err(invalid)?;
    let model = build_catalog(opts);
    let days_n = opts.days as usize;
    let end = u64::from(opts.days) * 86_400;

    // Day table: date text, month, traffic factor normalized to mean 1 over the period.
    let mut days = Vec::with_capacity(days_n);
    let mut date = opts.start_date;
    for _ in 0..days_n {
        let mut text = [b' '; 11];
        let s = date.format("%Y-%m-%d").to_string();
        for (slot, byte) in text.iter_mut().zip(s.bytes()) {
            *slot = byte;
        }
        let month = date.month0() as usize;
        let weekday = date.weekday().num_days_from_monday() as usize;
        days.push(Day {
            text,
            month,
            factor: MONTH_TRAFFIC[month] * WEEKDAY_TRAFFIC[weekday],
        });
        date = date.succ_opt().unwrap_or(date);
    }
    let mean_factor = days.iter().map(|d| d.factor).sum::<f64>() / days_n as f64;
    for d in &mut days {
        d.factor /= mean_factor;
    }
    let max_factor = days.iter().map(|d| d.factor).fold(0.0, f64::max);
    let season_max: Vec<f64> = (0..12)
        .map(|m| {
            CATEGORIES[..model.n_categories()]
                .iter()
                .map(|c| c.season[m])
                .fold(0.0, f64::max)
        })
        .collect();
    let mut hours_cum = Vec::with_capacity(HOURS.len());
    let mut acc = 0.0;
    for h in HOURS {
        acc += h;
        hours_cum.push(acc);
    }

    // Customers and their first purchases.
    let n_cust = opts.customers as usize;
    let mut customers = Vec::with_capacity(n_cust);
    let mut heap: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::with_capacity(n_cust);
    let mut calib = Vec::new();
    // Mean traffic factor from each day to the end: a customer acquired in November sees
    // mostly peak season, which the calibration must account for.
    let mut mean_from = vec![1.0; days_n];
    let mut acc_f = 0.0;
    for d in (0..days_n).rev() {
        acc_f += days[d].factor;
        mean_from[d] = acc_f / (days_n - d) as f64;
    }
    // Simulated campaigns: exposures are decided up front from each customer's own campaign
    // stream; the extra orders wait in their own heap.
    let mut stats = GenerateStats {
        customers: opts.customers,
        ..GenerateStats::default()
    };
    let cust_width = id_width(opts.customers, 5);
    let send_days: Vec<i64> = opts
        .campaigns
        .iter()
        .map(|c| (c.date - opts.start_date).num_days())
        .collect();
    let mut extras: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut extra_orders: Vec<ExtraOrder> = Vec::new();
    for i in 0..opts.customers {
        let (state, first) = new_customer(opts, &model, i, &hours_cum);
        if !opts.campaigns.is_empty() {
            let id = format!("C{:0cust_width$}", i + 1);
            for (ci, (c, &send_day)) in opts.campaigns.iter().zip(&send_days).enumerate() {
                match expose(opts.seed, c, send_day, i, &id, first / 86_400, &hours_cum) {
                    Exposure::Absent => {}
                    Exposure::Control => stats.campaign_control += 1,
                    Exposure::Treated(extra) => {
                        stats.campaign_treated += 1;
                        if let Some((at, rng)) = extra.filter(|&(at, _)| at < end) {
                            extra_orders.push(ExtraOrder {
                                customer: i as u32,
                                campaign: ci as u32,
                                rng,
                            });
                            extras.push(Reverse((at, extra_orders.len() as u64 - 1)));
                        }
                    }
                }
            }
        }
        if opts.target_lines.is_some() {
            let t_days = (end.saturating_sub(first)) as f64 / 86_400.0;
            let season = mean_from
                .get((first / 86_400) as usize)
                .copied()
                .unwrap_or(1.0);
            calib.push((
                f64::from(state.lambda) * season,
                f64::from(state.dropout),
                t_days,
                expected_lines(f64::from(state.basket)),
            ));
        }
        customers.push(state);
        heap.push(Reverse((first, i as u32)));
    }
    if let Some(target) = opts.target_lines {
        let scale = calibrate(target as f64, &calib);
        for c in &mut customers {
            c.lambda = (f64::from(c.lambda) * scale).min(2.0) as f32;
            c.dropout = scaled_dropout(f64::from(c.dropout), scale) as f32;
        }
        drop(calib);
    }

    let mut writer = Writer {
        out: w,
        buf: Vec::with_capacity(1 << 17),
        cust_width,
        prod_width: id_width(u64::from(opts.products), 4),
        model: &model,
    };
    writer.buf.extend_from_slice(TRANSACTIONS_HEADER.as_bytes());
    writer.buf.push(b'\n');

    let mut returns: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut return_events: Vec<ReturnEvent> = Vec::new();
    let malformed_total = u64::from(opts.malformed_rows);
    let malformed_at = |k: u64| -> u64 {
        let at =
            (2 * u128::from(k) + 1) * u128::from(end) / (2 * u128::from(malformed_total.max(1)));
        u64::try_from(at).unwrap_or(u64::MAX)
    };
    let mut basket: Vec<(u32, i64)> = Vec::with_capacity(8);
    // Natural orders are numbered on their own, so a campaign's extra orders (`OX1-00000001`)
    // leave every other line as it is without the campaign.
    let mut natural_orders = 0u64;

    loop {
        let next_purchase = heap.peek().map(|Reverse((t, _))| *t).filter(|&t| t < end);
        let next_return = returns
            .peek()
            .map(|Reverse((t, _))| *t)
            .filter(|&t| t < end);
        let next_extra = extras.peek().map(|Reverse((t, _))| *t).filter(|&t| t < end);
        let Some(now) = [next_purchase, next_return, next_extra]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        let day_idx = (now / 86_400) as usize;
        let tod = now % 86_400;
        let Some(day) = days.get(day_idx) else { break };

        // At equal times: natural purchases, then returns, then extra orders.
        if next_extra == Some(now)
            && next_purchase.is_none_or(|t| t > now)
            && next_return.is_none_or(|t| t > now)
        {
            let Some(Reverse((_, idx))) = extras.pop() else {
                break;
            };
            let Some(ev) = extra_orders.get_mut(idx as usize) else {
                continue;
            };
            let Some(taste) = customers.get(ev.customer as usize).map(Taste::of) else {
                continue;
            };
            draw_basket(
                &mut ev.rng,
                taste,
                &model,
                &season_max,
                day.month,
                &mut basket,
            );
            if basket.is_empty() {
                continue;
            }
            stats.orders += 1;
            stats.campaign_orders += 1;
            for &(product, qty) in &basket {
                let (unit, amount) = price_line(&mut ev.rng, &model, product, qty);
                writer.extra_line(
                    ev.campaign,
                    stats.campaign_orders,
                    ev.customer,
                    day,
                    tod,
                    product,
                    qty,
                    unit,
                    amount,
                );
                stats.lines += 1;
            }
            writer.flush_if_full()?;
            continue;
        }

        if next_return == Some(now) && next_purchase.is_none_or(|t| t > now) {
            let Some(Reverse((_, idx))) = returns.pop() else {
                break;
            };
            if let Some(ev) = return_events.get(idx as usize) {
                writer.line(
                    ev.order,
                    ev.customer,
                    day,
                    tod,
                    ev.product,
                    -1,
                    ev.unit_cents,
                    -ev.unit_cents,
                );
                stats.lines += 1;
                stats.returns += 1;
            }
            writer.flush_if_full()?;
            continue;
        }
        let Some(Reverse((_, ci))) = heap.pop() else {
            break;
        };
        let Some(state) = customers.get_mut(ci as usize) else {
            continue;
        };
        stats.orders += 1;
        natural_orders += 1;
        let order = natural_orders;
        state.purchases += 1;

        let taste = Taste::of(state);
        let rng = &mut state.rng;
        draw_basket(rng, taste, &model, &season_max, day.month, &mut basket);

        // Malformed lines due before this order.
        while stats.malformed < malformed_total && malformed_at(stats.malformed) <= now {
            if let Some(&(product, qty)) = basket.first() {
                let kind = stats.malformed % 6;
                write_malformed(&mut writer, kind, order, ci, day, tod, product, qty);
                stats.malformed += 1;
            } else {
                break;
            }
        }

        for &(product, qty) in &basket {
            let (unit, amount) = price_line(rng, &model, product, qty);
            writer.line(order, ci, day, tod, product, qty, unit, amount);
            stats.lines += 1;
        }
        if !basket.is_empty() && rng.chance(0.006) {
            let (product, qty) = basket[rng.below(basket.len() as u64) as usize];
            let unit = model
                .products
                .get(product as usize)
                .map_or(99, |p| i64::from(p.price_cents));
            let later = now - tod + (1 + rng.below(14)) * 86_400 + time_of_day(rng, &hours_cum);
            if later < end && qty > 0 {
                return_events.push(ReturnEvent {
                    order,
                    customer: ci,
                    product,
                    unit_cents: unit,
                });
                returns.push(Reverse((later, return_events.len() as u64 - 1)));
            }
        }
        writer.flush_if_full()?;

        // Next purchase: drop out after a repeat purchase with probability p; else the next
        // arrival of a Poisson process thinned by the day factor; never twice the same day.
        if state.purchases > 1 && rng.chance(f64::from(state.dropout)) {
            continue;
        }
        let rate = f64::from(state.lambda) * max_factor / 86_400.0;
        let mut t = now as f64;
        let next = loop {
            t += rng.exp(rate);
            if t >= end as f64 {
                break None;
            }
            let d = (t / 86_400.0) as usize;
            let Some(day) = days.get(d) else { break None };
            if rng.f64() * max_factor < day.factor {
                break Some(d as u64);
            }
        };
        if let Some(d) = next {
            // Never twice the same day (and never back in time).
            let d = d.max(day_idx as u64 + 1);
            let t = d * 86_400 + time_of_day(rng, &hours_cum);
            if t < end {
                heap.push(Reverse((t, ci)));
            }
        }
    }
    // Malformed lines not yet due (a period with few orders at its end).
    while stats.malformed < malformed_total {
        let day = days.last().map_or_else(
            || Day {
                text: *b"2000-01-01 ",
                month: 0,
                factor: 1.0,
            },
            |d| Day {
                text: d.text,
                month: d.month,
                factor: d.factor,
            },
        );
        let kind = stats.malformed % 6;
        write_malformed(
            &mut writer,
            kind,
            natural_orders + 1,
            0,
            &day,
            20 * 3600,
            0,
            1,
        );
        stats.malformed += 1;
    }
    writer.out.write_all(&writer.buf)?;
    writer.out.flush()?;
    Ok(stats)
}
