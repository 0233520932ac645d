"""An example of the user's file: calculate(inputs) takes the decoded JSON
inputs and returns anything JSON can encode."""
import statistics


def calculate(inputs):
    values = [float(v) for v in inputs["values"]]
    return {
        "count": len(values),
        "sum": sum(values),
        "mean": statistics.fmean(values),
        "max": max(values),
        "scaled": [v * inputs.get("factor", 1) for v in values],
    }
