"""Cost of ownership in the bench report: storage, transfer and compute at given prices, and the
break-even of a smaller but slower codec against the reference (docs/BENCH.md)."""

from pathlib import Path

from trainer.bench.options import BenchError

DEFAULT_PRICES = {  # USD; docs/BENCH.md says where they come from
    "storage_usd_per_gb_month": 0.023,
    "transfer_usd_per_gb": 0.09,
    "compute_usd_per_core_hour": 0.05,
}


def load_prices(spec: str | None) -> dict | None:
    if spec is None:
        return None
    prices = dict(DEFAULT_PRICES)
    if spec != "default":
        import yaml

        path = Path(spec)
        if not path.is_file():
            raise BenchError(f"--cost {spec}: no such file")
        try:
            given = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise BenchError(f"--cost {spec}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(given, dict):
            raise BenchError(f"--cost {spec}: expected a mapping of prices")
        for key, value in given.items():
            if key not in DEFAULT_PRICES:
                raise BenchError(f"--cost {spec}: unknown price {key!r}; known: {', '.join(DEFAULT_PRICES)}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise BenchError(f"--cost {spec}: {key} must be a non-negative number")
            prices[key] = float(value)
    return prices


def cost_of(totals: dict, cores: int, prices: dict) -> dict:
    gigabytes = totals["bytes"] / 1e9
    core_hours = cores / 3600
    return {
        "cores_charged": cores,
        "storage_year_usd": gigabytes * prices["storage_usd_per_gb_month"] * 12,
        "transfer_once_usd": gigabytes * prices["transfer_usd_per_gb"],
        "encode_compute_usd": totals["encode_seconds"] * core_hours * prices["compute_usd_per_core_hour"],
        "decode_compute_usd": totals["decode_seconds"] * core_hours * prices["compute_usd_per_core_hour"],
    }


def break_even(cost: dict, ref: dict, totals: dict, ref_totals: dict, prices: dict) -> dict:
    """Reads / months until this codec's smaller files pay for its extra coding cost vs the reference.

    extra = encode_compute - ref encode_compute (once). One read = send the files once + decode them once:
    saving per read = transfer_once(ref) - transfer_once - (decode_compute - ref decode_compute).
    Storage: saving per month = (ref bytes - bytes) in GB x storage price. Result: 0 when the codec costs
    no more to encode and saves (or breaks even) per read/month; 'never' when it saves nothing per
    read/month; otherwise extra / saving.
    """
    extra = cost["encode_compute_usd"] - ref["encode_compute_usd"]
    per_read = (ref["transfer_once_usd"] - cost["transfer_once_usd"]) - (
        cost["decode_compute_usd"] - ref["decode_compute_usd"])
    per_month = (ref_totals["bytes"] - totals["bytes"]) / 1e9 * prices["storage_usd_per_gb_month"]

    def ratio(saving):
        if extra <= 0 and saving >= 0:
            return 0
        if saving <= 0:
            return "never"
        return extra / saving

    return {"extra_encode_usd": extra, "saving_per_read_usd": per_read, "saving_per_month_usd": per_month,
            "break_even_reads": ratio(per_read), "break_even_months": ratio(per_month)}

