"""Monitoring of the deployed model: what production did, against what it was built from.

    make simulate SCENARIO=concept_drift   # a log window as the service would write it (simulate)
    make monitor                           # compact the logs, compare, decide (monitor)
    make retrain                           # the labelled window joins the training data (retrain)

`window` reads what the service logged (`core.events`) and the outcomes that arrived;
`reference` finds the data and model the logged version was built from; `drift`, `quality`
and `performance` compare the two (pure functions); `rule` decides whether to retrain and
keeps the window history; `analysis` puts it together into `summary.json`, which `page`
renders for people. A wing of its own: it imports core only (and the sample, only for the
simulator's sample scenarios).
"""
