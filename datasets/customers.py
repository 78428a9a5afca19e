"""The telco ``customers`` contract: one customer's current state, upserted by id.

Records are snapshots: a later ``updated_at`` replaces an earlier one (dedup policy
``keep_latest``), and ``total_charges`` may be absent, in which case normalisation
computes it as ``monthly_charges × tenure`` (months); a missing or null flag is
false and a missing or null internet service ``"No"``.  The gold aggregate counts
the versions per hour of ``updated_at`` by contract type and internet service, with
their average monthly charges and tenure, and ten minutes of allowed lateness.  The
generator's record maker sends new versions of a pool of customers: tenure grows,
charges and contracts change, one version in five leaves ``total_charges`` out and
one in twenty leaves a flag or the internet service out, or null.
"""

# No `from __future__ import annotations` here: the row types bound below are
# NamedTuples whose schemas Beam infers from evaluated annotations.
import random

from schemas.contract import Aggregate, Contract, DedupPolicy
from schemas.dataset import Dataset
from schemas.fields import Column, Computed, Field
from schemas.values import format_timestamp

__all__ = [
    "CONTRACT",
    "CustomersGoldRow",
    "CustomersRow",
    "DATASET",
    "new_maker",
    "to_customer_row",
]


CONTRACT = Contract(
    name="customers",
    title="One telco customer's current state",
    module=__name__,
    topic="customers",
    table="customers",
    fields=(
        Field("customer_id", "string", min_length=1),
        Field("gender", "string", enum=("Female", "Male", "Other")),
        # Silver's null handling: a flag missing or null is false, a missing or null
        # internet service is "No" (what the source systems mean by leaving it out).
        *(
            Field(flag, "boolean", required=False, nullable=True, default=False)
            for flag in ("senior_citizen", "partner", "dependents")
        ),
        Field("tenure", "integer", minimum=0, description="months as a customer"),
        Field("phone_service", "boolean", required=False, nullable=True, default=False),
        Field(
            "internet_service",
            "string",
            required=False,
            nullable=True,
            default="No",
            enum=("DSL", "Fiber optic", "No"),
        ),
        Field("contract", "string", enum=("Month-to-month", "One year", "Two year")),
        Field("monthly_charges", "number", minimum=0),
        Field(
            "total_charges",
            "number",
            required=False,
            nullable=True,
            minimum=0,
            description="computed as monthly_charges × tenure when missing",
        ),
        Field("updated_at", "timestamp"),
        Field("first_name", "string"),
        Field("last_name", "string"),
        Field("email", "string", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    ),
    id_field="customer_id",
    event_time_field="updated_at",
    columns=(
        Column("customer_id", "customer_id"),
        Column("gender", "gender"),
        Column("senior_citizen", "senior_citizen"),
        Column("partner", "partner"),
        Column("dependents", "dependents"),
        Column("tenure", "tenure"),
        Column("phone_service", "phone_service"),
        Column("internet_service", "internet_service"),
        Column("contract", "contract"),
        Column("monthly_charges", "monthly_charges"),
        Column("total_charges", "total_charges"),
        Column("updated_at_ms", "updated_at"),
        Column("first_name", "first_name"),
        Column("last_name", "last_name"),
        Column("email", "email"),
    ),
    dedup=DedupPolicy("keep_latest", order_by="updated_at"),
    # Silver: the main table's Parquet in hour folders of updated_at; bronze: every
    # record as read, raw bytes and Kafka coordinates.
    partition_by="hour",
    raw_output="customers_bronze",
    aggregates=(
        # Gold: per hour of updated_at, the versions seen and their average monthly
        # charges and tenure per contract type and internet service; the views
        # customers_gold_by_contract and customers_gold_by_internet_service roll it up.
        Aggregate(
            "customers_gold",
            keys=("contract", "internet_service"),
            window_s=3600,
            allowed_lateness_s=600,
            count_column="customer_versions",
            means=("monthly_charges", "tenure"),
            rollups=("contract", "internet_service"),
        ),
    ),
    computed=(Computed("total_charges", "monthly_charges", "*", "tenure"),),
    confluent_schema_id=2,
)

CustomersRow = CONTRACT.row_type()
CustomersGoldRow = CONTRACT.aggregate_row_type()

_CONTRACTS = ("Month-to-month", "One year", "Two year")
_INTERNET = ("DSL", "Fiber optic", "No")
_DEFAULTED = ("senior_citizen", "partner", "dependents", "phone_service", "internet_service")


def new_maker(rng: random.Random, fake, users: int, start_ms: int):
    """The record maker of one batch: ``users`` customers, each record a new version of
    one of them (so a batch holds several versions per customer)."""
    pool = []
    for n in range(1, users + 1):
        first, last = fake.first_name(), fake.last_name()
        pool.append(
            {
                "customer_id": f"c-{n:05d}",
                "gender": rng.choice(("Female", "Male", "Other")),
                "senior_citizen": rng.random() < 0.16,
                "partner": rng.random() < 0.5,
                "dependents": rng.random() < 0.3,
                "tenure": rng.randint(0, 72),
                "phone_service": rng.random() < 0.9,
                "internet_service": rng.choice(_INTERNET),
                "contract": rng.choice(_CONTRACTS),
                "monthly_charges": round(rng.uniform(18.0, 120.0), 2),
                "first_name": first,
                "last_name": last,
                "email": f"{first}.{last}{n}@example.com".lower(),
            }
        )

    def make(seq: int, event_ms: int, run_id: str) -> dict:
        customer = rng.choice(pool)
        customer["tenure"] += rng.randint(0, 1)
        if rng.random() < 0.2:
            customer["monthly_charges"] = round(rng.uniform(18.0, 120.0), 2)
        if rng.random() < 0.05:
            customer["contract"] = rng.choice(_CONTRACTS)
        record = {**customer, "updated_at": format_timestamp(event_ms)}
        if rng.random() < 0.05:  # a source that leaves a field out, or sends null
            name = rng.choice(_DEFAULTED)
            if rng.random() < 0.5:
                del record[name]
            else:
                record[name] = None
        if rng.random() >= 0.2:  # else absent: normalisation computes it
            record["total_charges"] = round(customer["monthly_charges"] * customer["tenure"], 2)
        return record

    return make


DATASET = Dataset(CONTRACT, key_field="customer_id", new_maker=new_maker)
to_customer_row = DATASET.to_row
