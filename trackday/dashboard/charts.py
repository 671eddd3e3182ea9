"""Plotly figures as JSON ({"data": [...], "layout": {...}}, Plotly's own schema): built here,
drawn in the browser by the plotly.js that the plotly package ships (static/dashboard.js)."""

from __future__ import annotations

_MARGIN = {"l": 50, "r": 20, "t": 40, "b": 100}


def _layout(title: str, x: str, y: str, **extra) -> dict:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}},
        "margin": _MARGIN,
        "autosize": True,
        "legend": {"orientation": "h", "y": -0.38, "yanchor": "top"},
        **extra,
    }


def loss(history: dict[str, list[float]]) -> dict:
    """Training and validation loss per epoch, one point per epoch."""
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": key,
            "x": list(range(1, len(history[key]) + 1)),
            "y": history[key],
        }
        for key in ("loss", "val_loss")
        if key in history
    ]
    return {"data": data, "layout": _layout("loss per epoch", "epoch", "loss")}


def _series(iterations: list[dict], key: str, name: str, dash: str = "solid") -> dict:
    rows = [i for i in iterations if i[key] is not None]
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "name": name,
        "x": [i["iteration"] for i in rows],
        "y": [i[key] for i in rows],
        "line": {"dash": dash},
    }


def reward(run: dict) -> dict:
    """Mean episode reward per iteration (all workers), training then evaluation."""
    found = run["iterations"]
    return {
        "data": [
            _series(found, "reward", "training"),
            _series(found, "eval_reward", "evaluation", "dash"),
        ],
        "layout": _layout("reward per iteration", "iteration", "mean episode reward"),
    }


def progress(run: dict) -> dict:
    found = run["iterations"]
    return {
        "data": [
            _series(found, "progress", "training"),
            _series(found, "eval_progress", "evaluation", "dash"),
        ],
        "layout": _layout(
            "progress per iteration",
            "iteration",
            "mean progress (%)",
            yaxis={"title": {"text": "mean progress (%)"}, "range": [0, 105]},
        ),
    }


def entropy(rounds: list) -> dict:
    """The policy's entropy per iteration (mean over the epochs of each round of training):
    falling entropy is the policy growing sure of its actions."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "entropy",
                "x": [r.iteration for r in rounds],
                "y": [r.entropy for r in rounds],
            }
        ],
        "layout": _layout("policy entropy per iteration", "iteration", "entropy", showlegend=False),
    }


def track_map(track: dict | None, points: dict, colour: str, iteration: int) -> dict:
    """The track's borders and centre line, and every step of the iteration coloured."""
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": name,
            "x": line["x"],
            "y": line["y"],
            "line": {
                "color": "#888" if name != "center" else "#ccc",
                "dash": "dot" if name == "center" else "solid",
            },
            "hoverinfo": "skip",
        }
        for name, line in (track or {}).items()
    ]
    data.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": f"steps ({colour})",
            "x": points["x"],
            "y": points["y"],
            "text": [f"episode {int(e)}" for e in points["episode"]],
            "marker": {
                "size": 4,
                "color": points["value"],
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": {"text": colour}},
            },
        }
    )
    title = f"iteration {iteration}: {points['steps']} steps"
    layout = _layout(title, "x (m)", "y (m)", showlegend=False)
    layout["yaxis"] |= {"scaleanchor": "x", "scaleratio": 1}
    return {"data": data, "layout": layout}
