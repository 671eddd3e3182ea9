"""`trackday dashboard`: one local, read-only web page for every DonkeyCar and DeepRacer run.

Starlette serves it on 127.0.0.1 (guard.py keeps it loopback-only and GET/HEAD-only); the
charts are Plotly, whose JavaScript comes from the plotly Python package, so the page needs no
network. Runs are read where they live, the stacks' buckets, with the readers the commands use
(training.storage, training.deepracer.metrics and simtrace, the DonkeyCar trainer's files).
"""
