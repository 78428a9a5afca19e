"""The telco ``customers`` contract: one customer's current state, upserted by id.

Records are snapshots: a later ``updated_at`` replaces an earlier one (dedup policy
``keep_latest``), and ``total_charges`` may be absent, in which case normalisation
computes it as ``monthly_charges × tenure`` (months).  The aggregate counts the
versions seen per contract type per hour of ``updated_at``, with ten minutes of
allowed lateness.  Contract, graph and unit tests now; its generator and the
end-to-end run come next (issue 13).
"""

# No `from __future__ import annotations` here: the row types bound below are
# NamedTuples whose schemas Beam infers from evaluated annotations.
from schemas.contract import (
    Aggregate,
    Column,
    Computed,
    Contract,
    DedupPolicy,
    Field,
    QualityCheck,
)
from schemas.dataset import Dataset

__all__ = ["CONTRACT", "CustomersByContractRow", "CustomersRow", "DATASET", "to_customer_row"]


CONTRACT = Contract(
    name="customers",
    title="One telco customer's current state",
    module=__name__,
    topic="customers",
    table="customers",
    fields=(
        Field("customer_id", "string", min_length=1),
        Field("gender", "string", enum=("Female", "Male", "Other")),
        Field("senior_citizen", "boolean"),
        Field("partner", "boolean"),
        Field("dependents", "boolean"),
        Field("tenure", "integer", minimum=0, description="months as a customer"),
        Field("phone_service", "boolean"),
        Field("internet_service", "string", enum=("DSL", "Fiber optic", "No")),
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
    partitioning=("updated_date",),
    aggregates=(
        Aggregate(
            "customers_by_contract",
            key="contract",
            window_s=3600,
            allowed_lateness_s=600,
            count_column="customer_versions",
        ),
    ),
    computed=(Computed("total_charges", "monthly_charges", "*", "tenure"),),
    quality_checks=(
        QualityCheck(
            "total_at_least_monthly_after_a_month",
            "tenure = 0 OR total_charges >= monthly_charges",
        ),
    ),
    reconciliation=(
        "produced == upserted + superseded + dead_letters",
        "postgres_customers == distinct customer_id among upserted",
    ),
    confluent_schema_id=2,
)

CustomersRow = CONTRACT.row_type()
CustomersByContractRow = CONTRACT.aggregate_row_type()

DATASET = Dataset(CONTRACT)
to_customer_row = DATASET.to_row
