"""Hand-written records the tests share (each test states what it changes)."""


def customer(**changes) -> dict:
    """A valid record of the telco ``customers`` contract, without ``total_charges``."""
    record = {
        "customer_id": "c-1",
        "gender": "Female",
        "senior_citizen": False,
        "partner": True,
        "dependents": False,
        "tenure": 12,
        "phone_service": True,
        "internet_service": "Fiber optic",
        "contract": "One year",
        "monthly_charges": 70.35,
        "updated_at": "2026-11-22T06:00:00+01:00",
        "first_name": "Ada",
        "last_name": "Byron",
        "email": "ada@example.org",
    }
    record.update(changes)
    return record
