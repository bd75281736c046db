"""The replica tables the pipeline reads, one declaration each, with the columns it reads.

Each domain in ``prediction_types`` names the tables its units need from here. One declaration per
table (the union of the columns any reader in ``features`` selects): a replica lacking one of them
is an RMS version the readers were not written for, and every unit reading the table is skipped
with the reason (``ReplicaReader.missing``) rather than failing in SQL mid-run.
"""

from __future__ import annotations

from core.replica import Requirement

ORDERS = Requirement(
    "orders_order",
    ("id", "restaurant_id", "customer_id", "order_type", "status", "total", "subtotal", "created_at"),
)
ORDER_ITEMS = Requirement(
    "orders_orderitem", ("id", "order_id", "menu_item_id", "quantity", "unit_price", "has_modifiers", "created_at")
)
MENU_ITEMS = Requirement(
    "menu_menuitem", ("id", "restaurant_id", "category", "price", "cost", "station_id", "is_active", "created_at")
)
CUSTOMERS = Requirement(
    "customers_customerprofile", ("id", "organization_id", "home_restaurant_id", "date_joined", "loyalty_tier")
)
KITCHEN_TICKETS = Requirement(
    "kitchen_orderitemstation",
    ("order_item_id", "station_id", "status", "queued_at", "prep_time_minutes", "queue_size_at_start"),
)
STATIONS = Requirement("kitchen_station", ("id", "restaurant_id", "station_type"))
INVENTORY_ITEMS = Requirement(
    "inventory_inventoryitem",
    ("id", "restaurant_id", "unit", "unit_cost", "supplier_id", "par_level", "reorder_point",
     "min_order_quantity", "is_perishable", "shelf_life_days"),
)
SUPPLIERS = Requirement("inventory_supplier", ("id", "organization_id", "default_lead_time_days"))
PURCHASE_ORDERS = Requirement(
    "inventory_purchaseorder",
    ("id", "restaurant_id", "supplier_id", "status", "ordered_at", "expected_at", "received_at"),
)
PURCHASE_ORDER_LINES = Requirement(
    "inventory_purchaseorderline", ("purchase_order_id", "inventory_item_id", "quantity_ordered")
)
BATCHES = Requirement(
    "inventory_batch", ("inventory_item_id", "quantity_received", "quantity_remaining", "received_at", "expires_at")
)
STOCK_MOVEMENTS = Requirement(
    "inventory_stockmovement", ("inventory_item_id", "movement_type", "quantity", "occurred_at")
)
RECIPES = Requirement("menu_recipeingredient", ("menu_item_id", "inventory_item_id", "quantity_per_unit"))
