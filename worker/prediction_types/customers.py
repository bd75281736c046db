"""Customer units: churn risk and lifetime value, weekly.

Both read the same features (``features.customers.customer_unit_features``), once per unit; the
weekly run is bounded by the shard (customers anchored to its restaurants), not by the chain.
"""

from __future__ import annotations

from features.customers import customer_unit_features
from models.churn import predict_churn
from models.ltv import predict_ltv
from core.replica import Requirement
from core.units import PredictionUnit

CUSTOMERS = Requirement(
    "customers_customerprofile",
    ("id", "organization_id", "home_restaurant_id", "date_joined", "loyalty_tier"),
)
ORDERS = Requirement("orders_order", ("id", "restaurant_id", "customer_id", "order_type", "status", "total", "subtotal",
                                      "created_at"))

UNITS: tuple[PredictionUnit, ...] = (
    PredictionUnit(
        prediction_type="churn",
        entity_type="customer",
        schedules=("weekly",),
        requires=(CUSTOMERS, ORDERS),
        features=customer_unit_features,
        predict=predict_churn,
    ),
    PredictionUnit(
        prediction_type="ltv",
        entity_type="customer",
        schedules=("weekly",),
        requires=(CUSTOMERS, ORDERS),
        features=customer_unit_features,
        predict=predict_ltv,
    ),
)
